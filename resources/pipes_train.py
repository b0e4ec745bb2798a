"""The process the training launcher starts (`python resources/pipes_train.py --stage N`, or under torchrun):
the trainer's CLI (`pipeline.training.cli.train_from_args`) with Dagster Pipes around it.

Global rank 0 opens the Pipes channel: the loss goes to the run's logs, and the stage's metadata (loss curve
inline, tokens/s, checkpoint, data version) is reported when the stage ends. On failure, rank 0 writes the
trainer's message to MMG4_TRAIN_ERROR_FILE, so the launcher fails the asset with it. Run as a script (not
`-m resources...`), so the child does not import the resources package and its engines.
"""
from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path
from typing import Any

# run as a script, its own folder comes first on sys.path: drop it, or resources/lake.py, clip.py, ...
# would shadow any top-level module of those names
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

from dagster_pipes import open_dagster_pipes  # noqa: E402

from pipeline.stats import StepResult  # noqa: E402
from pipeline.training.cli import parser, train_from_args  # noqa: E402
from pipeline.training.env import launch_rank  # noqa: E402
from pipeline.training.run import CURVE_FILE, TRAIN_FILE, WEIGHTS_FILE  # noqa: E402


def pipes_metadata(result: StepResult) -> dict[str, Any]:
    """The stage's metadata in the Pipes wire form: plain values, JSON, and the loss curve as Markdown."""
    folder = Path(result.path)
    md: dict[str, Any] = {k: v for k, v in result.stats.to_dict().items() if not isinstance(v, dict)}
    record = json.loads((folder / TRAIN_FILE).read_text())
    png = base64.b64encode((folder / CURVE_FILE).read_bytes()).decode()
    md.update(checkpoint={"raw_value": str(folder / WEIGHTS_FILE), "type": "path"},
              loss_curve={"raw_value": f"![loss curve](data:image/png;base64,{png})", "type": "md"},
              loss_curve_path={"raw_value": str(folder / CURVE_FILE), "type": "path"},
              samples_by_dataset={"raw_value": record.get("samples_by_dataset", {}), "type": "json"},
              data_version=record["data_version"])
    return md


def _leave_error(err: BaseException) -> None:
    path = os.environ.get("MMG4_TRAIN_ERROR_FILE")
    if path:
        Path(path).write_text(f"{type(err).__name__}: {err}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    if launch_rank() != 0:  # only global rank 0 may talk to Dagster
        train_from_args(a)
        return 0
    with open_dagster_pipes() as pipes:
        try:
            result = train_from_args(a, log=pipes.log.info)
        except BaseException as err:
            _leave_error(err)
            raise  # Pipes records the exception as well
        pipes.report_asset_materialization(metadata=pipes_metadata(result),
                                           data_version=result.manifest.extra["data_version"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
