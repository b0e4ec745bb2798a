"""``python -m pipeline.train --stage N [--no-resume] [--max-steps K]``: one training stage of the active
profile (MMG4_CONFIG; MMG4_LAKE_ROOT overrides its lake), in one process or under ``deepspeed``/``torchrun``.

Plain Python: it prints. The `stageN` assets run the same `train_from_args` through
`resources/pipes_train.py`, which reports to Dagster over Pipes (this library never imports Dagster).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable

from pipeline.config import ConfigError, load_profile
from pipeline.lake import Lake
from pipeline.stats import StepResult
from pipeline.training.run import run_stage

#: a bad profile, mixture, shard or checkpoint (MixtureError, CheckpointMismatch, ShardError are ValueErrors)
BAD_INPUT = (ConfigError, ValueError)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description="Train one stage of the active profile (MMG4_CONFIG).")
    ap.add_argument("--stage", type=int, required=True)
    ap.add_argument("--no-resume", action="store_true", help="ignore existing checkpoints of this stage")
    ap.add_argument("--max-steps", type=int, default=None, help="stop after K optimiser steps (a trial run)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    return ap


def train_from_args(a: argparse.Namespace, log: Callable[[str], None] = print) -> StepResult:
    """Run the stage the arguments name; the loss goes to `log` every `log_every` steps."""
    profile = load_profile()
    lake = Lake.at(os.environ.get("MMG4_LAKE_ROOT") or profile.lake_root)
    every = profile.model.stages[a.stage].log_every if a.stage in profile.model.stages else 10

    def on_step(step: int, loss: float) -> None:
        if step % every == 0:
            log(f"stage {a.stage} step {step} loss {loss:.4f}")

    result = run_stage(profile, lake, a.stage, resume=not a.no_resume, max_steps=a.max_steps,
                       progress=not a.no_progress, on_step=on_step)
    if result.manifest is not None and result.stats.counters.get("cached"):
        log(f"stage {a.stage}: trained weights for these inputs exist ({result.path}); nothing to train")
    return result


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    try:
        result = train_from_args(a)
    except BAD_INPUT as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if result.manifest is not None:  # rank 0
        print(json.dumps(result.stats.to_dict(), indent=1))
    return 0
