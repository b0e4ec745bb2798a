"""``python -m pipeline.train --stage N [--no-resume] [--max-steps K]``: one training stage of the active
profile (MMG4_CONFIG; MMG4_LAKE_ROOT overrides its lake), in one process or under ``deepspeed``/``torchrun``.

Launched by the `stageN` assets through Dagster Pipes, global rank 0 opens the Pipes channel: the loss goes
to the run's logs every `log_every` steps and the stage's metadata and data version are reported at the end;
a failure is reported with the trainer's message (and exit status 2 for a bad input). Other ranks and a
plain shell run print instead.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys

from pipeline.config import ConfigError, load_profile
from pipeline.lake import Lake
from pipeline.training.env import launch_rank
from pipeline.training.run import pipes_metadata, run_stage

#: a bad profile, mixture, shard or checkpoint (MixtureError, CheckpointMismatch, ShardError are ValueErrors)
BAD_INPUT = (ConfigError, ValueError)


def _pipes():
    """The Pipes context on global rank 0 when launched by Dagster, else None."""
    from dagster_pipes import DAGSTER_PIPES_CONTEXT_ENV_VAR, open_dagster_pipes

    if DAGSTER_PIPES_CONTEXT_ENV_VAR not in os.environ or launch_rank() != 0:
        return None
    return open_dagster_pipes()


def _leave_error(err: BaseException) -> None:
    """The trainer's error for the launcher (MMG4_TRAIN_ERROR_FILE), which fails the asset with it."""
    path = os.environ.get("MMG4_TRAIN_ERROR_FILE")
    if path and launch_rank() == 0:
        with open(path, "w", encoding="utf-8") as f:
            f.write(f"{type(err).__name__}: {err}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Train one stage of the active profile (MMG4_CONFIG).")
    ap.add_argument("--stage", type=int, required=True)
    ap.add_argument("--no-resume", action="store_true", help="ignore existing checkpoints of this stage")
    ap.add_argument("--max-steps", type=int, default=None, help="stop after K optimiser steps (a trial run)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    a = ap.parse_args(argv)
    pipes = _pipes()
    with pipes if pipes is not None else contextlib.nullcontext():
        log = pipes.log.info if pipes is not None else print
        try:
            profile = load_profile()
            lake = Lake.at(os.environ.get("MMG4_LAKE_ROOT") or profile.lake_root)
            every = profile.model.stages[a.stage].log_every if a.stage in profile.model.stages else 10

            def on_step(step: int, loss: float) -> None:
                if step % every == 0:
                    log(f"stage {a.stage} step {step} loss {loss:.4f}")

            result = run_stage(profile, lake, a.stage, resume=not a.no_resume, max_steps=a.max_steps,
                               progress=not a.no_progress and pipes is None, on_step=on_step)
        except BAD_INPUT as err:
            if pipes is None:
                print(f"error: {err}", file=sys.stderr)
                return 2
            _leave_error(err)
            raise  # Pipes records the exception too
        except BaseException as err:
            _leave_error(err)
            raise
        if result.manifest is None:  # not rank 0
            return 0
        if result.stats.counters.get("cached"):
            log(f"stage {a.stage}: trained weights for these inputs exist ({result.path}); nothing to train")
        if pipes is not None:
            pipes.report_asset_materialization(metadata=pipes_metadata(result),
                                               data_version=result.manifest.extra["data_version"])
        else:
            print(json.dumps(result.stats.to_dict(), indent=1))
    return 0
