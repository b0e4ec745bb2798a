"""The CLIP scorer resource: NLLB-CLIP (open_clip) as the profile's `wit` settings say (the settings
object itself, not copies of its fields)."""
from __future__ import annotations

from pipeline.config import WitSettings
from pipeline.lake import Lake
from pipeline.wit.clip import ClipEngine
from pipeline.wit.run import model_dir


class ClipScorerResource:
    """Hands out one `ClipEngine` per lake, so a process opens the model once, however many partitions it runs."""

    def __init__(self, settings: WitSettings):
        self.settings = settings
        self._engines: dict[str, ClipEngine] = {}

    def engine(self, lake: Lake) -> ClipEngine:
        key = str(lake.root)
        if key not in self._engines:
            self._engines[key] = ClipEngine(model_dir(lake), self.settings.device, self.settings.torch_threads)
        return self._engines[key]
