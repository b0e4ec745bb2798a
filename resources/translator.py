"""The translator resource: NLLB on CTranslate2 and the translation memory, as the profile's
`translation` settings say (the settings object itself, not copies of its fields)."""
from __future__ import annotations

from pipeline.config import TranslationSettings
from pipeline.lake import Lake
from pipeline.translation.run import Engines


class TranslatorResource:
    """Hands out one `Engines` per lake, so a process opens the model once, however many partitions it runs."""

    def __init__(self, settings: TranslationSettings):
        self.settings = settings
        self._engines: dict[str, Engines] = {}

    def engines(self, lake: Lake) -> Engines:
        key = str(lake.root)
        if key not in self._engines:
            self._engines[key] = Engines(self.settings, lake)
        return self._engines[key]
