"""The translator resource: opens NLLB on CTranslate2 and the translation memory, as the profile says."""
from __future__ import annotations

from typing import Optional

import dagster as dg

from pipeline.lake import Lake
from pipeline.translation.memory import TranslationMemory
from pipeline.translation.translator import Translator

class TranslatorResource(dg.ConfigurableResource):
    device: str = "cpu"
    compute_type: str = "int8"
    inter_threads: int = 1
    intra_threads: int = 0
    batch_tokens: int = 2048
    beam_size: int = 1
    overlap_batches: bool = False
    memory_url: Optional[str] = None  # None: an SQLite file in the lake

    def model_dir(self, lake: Lake) -> str:
        return str(lake.model("nllb", "ct2"))  # written by the nllb_model asset

    def open_translator(self, lake: Lake) -> Translator:
        return Translator.from_settings(self.model_dir(lake), self)

    def open_memory(self, lake: Lake, translator: Translator, src_lang: str = "eng_Latn") -> TranslationMemory:
        return translator.open_memory(self.memory_url or lake.memory_url(), src_lang)
