"""The evaluator resource: one loaded model per (lake, stage, trained weights), so the partitions of a stage
that run in one process load the model once."""
from __future__ import annotations

from pipeline.config import Profile
from pipeline.evaluate.run import Generator
from pipeline.lake import Lake
from pipeline.training.run import read_final


class EvaluatorResource:
    def __init__(self, profile: Profile):
        self.profile = profile
        self._models: dict[tuple, Generator] = {}

    def generator(self, lake: Lake, stage_no: int) -> Generator:
        version = (read_final(lake, stage_no) or {}).get("data_version")
        key = (str(lake.root), stage_no, version)
        if key not in self._models:
            self._models = {k: v for k, v in self._models.items() if k[:2] != key[:2]}  # drop an older checkpoint
            self._models[key] = Generator(self.profile, lake, stage_no)
        return self._models[key]
