"""The training launcher: runs the trainer (`resources/pipes_train.py`: the same `train_from_args` as
`python -m pipeline.train --stage N`; `torchrun` over several processes) with Dagster Pipes, so the
trainer's loss streams into the run's logs and its metadata, data version and errors land on the
`stageN` asset. The profile travels as a file, so a test's or an ablation's
profile trains exactly as it was given."""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import dagster as dg
from dagster._core.errors import DagsterPipesExecutionError  # not re-exported at the top level

from pipeline.config import REPO_ROOT, Profile
from pipeline.training.env import DIST_ENV


class TrainingLauncher(dg.ConfigurableResource):
    """`processes` > 1 launches torchrun on this host (rank 0 reports to Dagster)."""

    processes: int = 1

    def command(self, stage_no: int) -> list[str]:
        train = [str(REPO_ROOT / "resources" / "pipes_train.py"), "--stage", str(stage_no), "--no-progress"]
        if self.processes == 1:
            return [sys.executable, *train]
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={self.processes}",
                *train]

    def run(self, context: dg.AssetExecutionContext, profile: Profile, lake_root: str, stage_no: int
            ) -> dg.MaterializeResult:
        with tempfile.TemporaryDirectory(prefix="mmg4-train-") as tmp:
            profile_file = Path(tmp) / "profile.json"
            profile_file.write_text(profile.model_dump_json())
            error_file = Path(tmp) / "error.txt"
            # blank the process-group variables this process may hold (it may have trained in-process, as
            # tests do): a single trainer must pick its own port, and torchrun sets them per worker
            env = {**{k: "" for k in DIST_ENV}, "MMG4_CONFIG": str(profile_file), "MMG4_LAKE_ROOT": lake_root,
                   "MMG4_TRAIN_ERROR_FILE": str(error_file),
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
            client = dg.PipesSubprocessClient(env=env, cwd=str(REPO_ROOT))
            try:
                return client.run(context=context, command=self.command(stage_no)).get_materialize_result()
            except DagsterPipesExecutionError as err:
                if not error_file.is_file():
                    raise
                # the trainer's own message, not "process failed with code 1", is what the UI should show
                message = error_file.read_text(encoding="utf-8")
                raise dg.Failure(description=f"stage {stage_no} failed: {message}",
                                 metadata={"error": dg.MetadataValue.text(message)}) from err
