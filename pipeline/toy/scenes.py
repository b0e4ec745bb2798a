"""Scenes of the toy world: one coloured shape on a plain background, drawn with PIL from a seed.

A scene is fully described by (colour, shape, size, position); the same id always draws the same
pixels, so every corpus that mentions a scene can be checked against its picture.
"""
from __future__ import annotations

import io
import random
from dataclasses import asdict, dataclass

from PIL import Image, ImageDraw

from pipeline.toy.lexicon import COLOUR_RGB, COLOURS, POSITIONS, SHAPES, SIZES

IMAGE_SIZE = 224
_CENTRES = {
    "top left": (56, 56),
    "top right": (168, 56),
    "bottom left": (56, 168),
    "bottom right": (168, 168),
    "centre": (112, 112),
}
_RADIUS = {"small": 22, "big": 44}


@dataclass(frozen=True)
class Scene:
    scene_id: int
    colour: str
    shape: str
    size: str
    position: str

    def slots(self) -> dict[str, str]:
        d = asdict(self)
        d.pop("scene_id")
        return d


def make_scene(seed: int, scene_id: int) -> Scene:
    rng = random.Random(f"{seed}:{scene_id}")
    return Scene(scene_id, rng.choice(COLOURS), rng.choice(SHAPES), rng.choice(SIZES), rng.choice(POSITIONS))


def make_scenes(seed: int, n: int) -> list[Scene]:
    return [make_scene(seed, i) for i in range(n)]


def draw(scene: Scene, seed: int = 0) -> Image.Image:
    """Render a scene: light background with faint noise, the shape jittered a few pixels."""
    rng = random.Random(f"draw:{seed}:{scene.scene_id}")
    base = 235 + rng.randint(-10, 10)
    img = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (base, base, base - 5))
    px = img.load()
    for _ in range(400):
        x, y = rng.randrange(IMAGE_SIZE), rng.randrange(IMAGE_SIZE)
        v = base + rng.randint(-25, 0)
        px[x, y] = (v, v, v)
    d = ImageDraw.Draw(img)
    cx, cy = _CENTRES[scene.position]
    cx += rng.randint(-6, 6)
    cy += rng.randint(-6, 6)
    r = _RADIUS[scene.size]
    fill = COLOUR_RGB[scene.colour]
    if scene.shape == "circle":
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif scene.shape == "square":
        d.rectangle((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif scene.shape == "triangle":
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    elif scene.shape == "star":
        import math

        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else r * 0.45
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
        d.polygon(pts, fill=fill)
    else:  # pragma: no cover - SHAPES is closed
        raise ValueError(f"unknown shape {scene.shape!r}; valid: {SHAPES}")
    return img


def jpeg_bytes(scene: Scene, seed: int = 0, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    draw(scene, seed).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
