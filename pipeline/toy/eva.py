"""The toy profile's tiny EVA: a timm `Eva` registered as an open_clip model, trained CLIP-style briefly.

`train_toy_eva(out_dir, vision, settings)` registers the architecture `vision.arch` under the open_clip name
`vision.model` (the same `pipeline.model.vision.register_eva` the model factory calls, so the trunk is the
same timm `Eva` class as production's EVA01-g-14), trains the whole CLIP (Eva + a small text tower) with
open_clip's `ClipLoss` on toy scenes and English captions, reports held-out image->caption retrieval
accuracy, and saves `open_clip_model.safetensors`, which `vision.pretrained` then names.
`ensure_toy_eva(folder, vision, settings)` trains into `folder` once per settings (the key is in its info file).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import shutil
import sys
import time
from pathlib import Path

import torch

from pipeline.config import EvaArch, ToyEvaSettings, VisionSettings
from pipeline.model.minigpt import load_image
from pipeline.model.vision import create_clip
from pipeline.toy.scenes import jpeg_bytes, make_scenes
from pipeline.toy.world import say
from pipeline.toy.info import read_info, write_info

RECIPE_VERSION = 1
INFO_FILE = "toy_eva.json"
WEIGHTS = "open_clip_model.safetensors"
TOY_VISION = VisionSettings(model="EVA-toy", pretrained=None, arch=EvaArch(), image_size=64)
QUICK = ToyEvaSettings(scenes=64, steps=10, batch_size=16)


def settings_key(vision: VisionSettings, settings: ToyEvaSettings) -> str:
    blob = json.dumps({"recipe": RECIPE_VERSION, "vision": vision.model_dump(exclude={"pretrained"}),
                       **settings.model_dump()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def train_toy_eva(out_dir: str | Path, vision: VisionSettings = TOY_VISION,
                  settings: ToyEvaSettings = ToyEvaSettings(), log=print) -> dict:
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(settings.seed)
    torch.set_num_threads(settings.threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = create_clip(vision, pretrained=None)
    tokenizer = open_clip.get_tokenizer(vision.model)
    scenes = make_scenes(settings.seed + 1, settings.scenes)
    pixels = torch.stack([load_image(jpeg_bytes(s), vision.image_size) for s in scenes])
    texts = tokenizer([say("caption", "eng_Latn", s) for s in scenes])
    n_held = max(8, len(scenes) // 10)
    train_idx = list(range(n_held, len(scenes)))
    loss_fn = open_clip.ClipLoss()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": [p for p in params if p.ndim >= 2], "weight_decay": 0.05},
                             {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}], lr=settings.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(settings.warmup_steps, 1)) * 0.5 * (1 + math.cos(math.pi * s / settings.steps)))
    rng = random.Random(settings.seed)
    started = time.perf_counter()
    model.train()
    first = last = None
    for step in range(settings.steps):
        idx = rng.sample(train_idx, min(settings.batch_size, len(train_idx)))
        out_d = model(pixels[idx], texts[idx])
        loss = loss_fn(out_d[0], out_d[1], out_d[2])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step(); sched.step(); opt.zero_grad()
        first = float(loss.detach()) if first is None else first
        last = float(loss.detach())
        if (step + 1) % 100 == 0:
            log(f"toy eva step {step + 1}/{settings.steps} loss {last:.3f}")
    model.eval()
    with torch.no_grad():  # held-out retrieval among captions of the held-out scenes (same caption = correct)
        img = model.encode_image(pixels[:n_held], normalize=True)
        txt = model.encode_text(texts[:n_held], normalize=True)
        pick = (img @ txt.T).argmax(1)
        caps = [say("caption", "eng_Latn", s) for s in scenes[:n_held]]
        acc = sum(caps[int(j)] == caps[i] for i, j in enumerate(pick)) / n_held
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / WEIGHTS))
    info = {"key": settings_key(vision, settings), "vision": vision.model_dump(),
            "settings": settings.model_dump(), "first_loss": first,
            "last_loss": last, "heldout_retrieval_acc": round(acc, 3), "chance": round(1 / n_held, 3),
            "seconds": round(time.perf_counter() - started, 1)}
    write_info(out / INFO_FILE, info)
    return info


def ensure_toy_eva(folder: str | Path, vision: VisionSettings = TOY_VISION,
                   settings: ToyEvaSettings = ToyEvaSettings(), log=print) -> Path:
    """Train into `folder` unless it already holds the EVA of these settings (its info file records the
    key); returns the checkpoint file for `model.vision.pretrained`. A stable folder, so the profile can
    name the file; training goes to a sibling and is swapped in whole, so a killed run leaves no half model."""
    final, key = Path(folder), settings_key(vision, settings)
    info = read_info(final / INFO_FILE)
    if not (info and info.get("key") == key and (final / WEIGHTS).is_file()):
        tmp = final.with_name(final.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        train_toy_eva(tmp, vision, settings, log)
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    return final / WEIGHTS


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args(argv)
    path = ensure_toy_eva(a.out, TOY_VISION, QUICK if a.quick else ToyEvaSettings())
    print(path)
    print((path.parent / INFO_FILE).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
