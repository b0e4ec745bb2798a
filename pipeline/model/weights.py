"""Trainable weights (projection + LoRA) as safetensors: `save_trainable`, `load_trainable` (checked)."""
from __future__ import annotations

from pathlib import Path

import torch

from pipeline.model.minigpt import CheckpointMismatch, MiniGPT


def check_trainable(model: MiniGPT, path: str | Path) -> dict[str, torch.Tensor]:
    """Read a trainable-weights file and check it fits `model`; raises CheckpointMismatch naming the file."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointMismatch(f"{path}: no trainable-weights file there")
    state = load_file(str(path))
    want = {n: tuple(p.shape) for n, p in model.trainable_state().items()}
    have = {n: tuple(t.shape) for n, t in state.items()}
    problems = []
    if missing := sorted(set(want) - set(have)):
        problems.append(f"missing {len(missing)} key(s), e.g. {missing[:3]}")
    if extra := sorted(set(have) - set(want)):
        problems.append(f"{len(extra)} unexpected key(s), e.g. {extra[:3]}")
    shapes = [f"{n}: file {have[n]} vs model {want[n]}" for n in sorted(set(want) & set(have)) if want[n] != have[n]]
    if shapes:
        problems.append(f"{len(shapes)} shape mismatch(es), e.g. {shapes[:3]}")
    if problems:
        raise CheckpointMismatch(f"{path} does not fit this model ({'; '.join(problems)}): it was saved from "
                                 f"another model shape (profile model.* settings)")
    return state


def load_trainable(model: MiniGPT, path: str | Path) -> None:
    """'Load weights' (not 'resume'): copy projection + LoRA weights into the model, nothing else."""
    state = check_trainable(model, path)
    params = model.trainable_state()
    with torch.no_grad():
        for name, tensor in state.items():
            params[name].copy_(tensor.to(params[name].dtype))


def save_trainable(state: dict[str, torch.Tensor], path: str | Path) -> None:
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp))
    tmp.replace(path)
