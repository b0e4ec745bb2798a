"""The frozen vision tower: open_clip's EVA (a timm `Eva` trunk), last block(s) and final norm dropped.

The paper profile builds open_clip `EVA01-g-14` with `laion400m_s11b_b41k`; the toy profile registers a
tiny timm `Eva` (`register_eva`) under an open_clip model name and loads the toy EVA's checkpoint file:
one code path, `open_clip.create_model(name, pretrained=...)`, for both.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from pipeline.config import ConfigError, EvaArch, VisionSettings

# EVA-CLIP / OpenAI CLIP normalisation (open_clip's EVA configs use these)
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


def timm_name(arch: EvaArch, image_size: int) -> str:
    blob = json.dumps({"img": image_size, **arch.model_dump()}, sort_keys=True)
    return "mmg4_eva_" + hashlib.sha256(blob.encode()).hexdigest()[:12]


def register_eva(name: str, arch: EvaArch, image_size: int) -> str:
    """Register a timm `Eva` of this architecture and an open_clip config `name` that uses it (idempotent)."""
    import open_clip
    import timm
    from timm.models import eva as timm_eva
    from timm.models import register_model

    tname = timm_name(arch, image_size)
    if not timm.models.is_model(tname):
        def _build(pretrained: bool = False, **kwargs):
            for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
                kwargs.pop(key, None)
            return timm_eva.Eva(img_size=image_size, patch_size=arch.patch_size, embed_dim=arch.embed_dim,
                                depth=arch.depth, num_heads=arch.num_heads, mlp_ratio=arch.mlp_ratio, **kwargs)
        _build.__name__ = tname
        _build.__module__ = timm_eva.__name__
        register_model(_build)
    cfg = {
        "embed_dim": arch.embed_dim_out,
        "vision_cfg": {"image_size": image_size, "timm_model_name": tname, "timm_model_pretrained": False,
                       "timm_pool": "token", "timm_proj": None},
        "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": arch.text_width, "heads": 4,
                     "layers": arch.text_layers},
        "custom_text": True,
    }
    # open_clip reads model configs from files: one JSON per registered name, in a temporary folder
    folder = Path(tempfile.gettempdir()) / "mmg4_open_clip_configs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    text = json.dumps(cfg, indent=1)
    if not path.is_file() or path.read_text() != text:
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    open_clip.add_model_config(path)
    return name


def create_clip(settings: VisionSettings, pretrained: str | None):
    """The whole open_clip model (vision + text), as the factory and the toy CLIP pretraining build it."""
    import open_clip

    if settings.arch is not None:
        register_eva(settings.model, settings.arch, settings.image_size)
    if settings.model not in open_clip.list_models():
        raise ConfigError(f"model.vision.model: unknown open_clip model {settings.model!r} (set model.vision.arch "
                          f"to register a toy EVA)")
    if pretrained and ("/" in pretrained or pretrained.endswith((".safetensors", ".bin", ".pt"))) \
            and not Path(pretrained).is_file():
        raise ConfigError(f"model.vision.pretrained: checkpoint file {pretrained} does not exist")
    return open_clip.create_model(settings.model, pretrained=pretrained or None)


class VisionTower(nn.Module):
    """EVA trunk without its last `drop_last_blocks` blocks and final norm, then the frozen `ln_vision`.

    Output: patch tokens (CLS and other prefix tokens dropped), [B, num_patches, width]. Always frozen,
    always in eval mode (`train()` cannot switch it back).
    """

    def __init__(self, trunk: nn.Module, drop_last_blocks: int):
        super().__init__()
        if drop_last_blocks >= len(trunk.blocks):
            raise ConfigError(f"model.vision.drop_last_blocks {drop_last_blocks} leaves no block "
                              f"of {len(trunk.blocks)}")
        if drop_last_blocks:
            trunk.blocks = trunk.blocks[: len(trunk.blocks) - drop_last_blocks]
        trunk.norm = nn.Identity()
        trunk.fc_norm = nn.Identity()
        trunk.head = nn.Identity()
        self.trunk = trunk
        self.width = trunk.embed_dim
        self.num_patches = trunk.patch_embed.num_patches
        self.ln_vision = nn.LayerNorm(self.width)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):  # noqa: ARG002 - frozen: always eval
        return super().train(False)

    @torch.no_grad()
    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.trunk.forward_features(pixels)
        x = x[:, self.trunk.num_prefix_tokens:]
        return self.ln_vision(x)


def build_vision(settings: VisionSettings) -> VisionTower:
    clip = create_clip(settings, settings.pretrained)
    return VisionTower(clip.visual.trunk, settings.drop_last_blocks)
