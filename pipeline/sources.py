"""The raw corpora of the paper, by name: how each is read and where its validated copy goes.

One function per source kind; the Dagster assets and the CLI both go through `ingest()`, so a source
behaves the same from the UI, a backfill or plain Python.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from pipeline.config import Profile
from pipeline.corpora.base import ReadResult, publish
from pipeline.corpora.conversations import read_conversations
from pipeline.corpora.flores import read_flores
from pipeline.corpora.mmmu import IMAGE_FIELDS, read_mmmu
from pipeline.corpora.wit import read_wit
from pipeline.corpora.xstorycloze import read_xstorycloze
from pipeline.lake import Lake, Manifest

CAPTION_SOURCES = ("cc_sbu", "laion")
CONVERSATION_SOURCES = ("llava_instruct", "palo", "cambrian")
TABLE_SOURCES = ("wit", "flores", "xstorycloze", "mmmu")
ALL_SOURCES = CAPTION_SOURCES + CONVERSATION_SOURCES + TABLE_SOURCES

DESCRIPTIONS = {
    "cc_sbu": "CC + SBU image-caption pairs, downloaded into webdataset shards (stage 1)",
    "laion": "LAION image-caption pairs, downloaded into webdataset shards (stage 1)",
    "llava_instruct": "LLaVA-Instruct conversations (translated later: LAVAM)",
    "palo": "PALO multilingual conversations (LLaVA format, already translated by its authors)",
    "cambrian": "Cambrian-10M rows, with images (CI) and text-only (CT)",
    "wit": "WIT image-caption rows in the profile's languages (filtered by NLLB-CLIP later)",
    "flores": "Flores-200 parallel sentences, eleven languages (MText)",
    "xstorycloze": "XStoryCloze stories in the profile's languages (MText)",
    "mmmu": "MMMU multiple-choice and open questions (evaluation)",
}


@dataclass
class Ingested:
    result: ReadResult
    manifest: Manifest
    seconds: float
    sample: list[dict[str, Any]]

    @property
    def rows_per_s(self) -> float:
        return self.result.read / self.seconds if self.seconds else 0.0


def _read(name: str, profile: Profile, lake: Lake) -> tuple[ReadResult, str]:
    src = getattr(profile.sources, name)
    if name in CONVERSATION_SOURCES:
        root = lake.expand(src.image_root) if src.image_root else None
        return read_conversations(lake.expand(src.path), name, root), "jsonl"
    if name == "wit":
        return read_wit(lake.expand(src.path), profile.languages), "parquet"
    if name == "flores":
        return read_flores(lake.expand(src.folder), src.split, profile.languages), "parquet"
    if name == "xstorycloze":
        return read_xstorycloze(lake.expand(src.path)), "parquet"
    if name == "mmmu":
        return read_mmmu(lake.expand(src.path)), "parquet"
    raise ValueError(f"unknown source {name!r}; valid: {list(ALL_SOURCES)}")


def _sample(name: str, rows: list[dict[str, Any]], n: int = 5) -> list[dict[str, Any]]:
    """A few rows for the UI: image bytes left out, long values cut."""
    def cell(v: Any) -> Any:
        return v if isinstance(v, (int, float)) else str(v)[:200]
    return [{k: cell(v) for k, v in row.items() if k not in IMAGE_FIELDS} for row in rows[:n]]


def ingest(name: str, profile: Profile, lake: Lake, log: Callable[[str], None] = print) -> Ingested:
    """Read, validate and publish one raw source under `raw/<name>/`."""
    started = time.perf_counter()
    if name in CAPTION_SOURCES:
        from pipeline.download import download_captions
        from pipeline.toy.image_server import TOY_HOST, serve

        src = getattr(profile.sources, name)
        out = lake.raw(name)
        if profile.is_toy:  # the toy images come from a loopback server this step runs itself
            with serve(lake.toy_world("www"), stall_s=profile.download.timeout_s + 3) as base:
                log(f"{name}: serving toy images at {base}")
                d = download_captions(src, lake.expand(src.url_list), out, profile.download, {TOY_HOST: base}, name)
        else:
            d = download_captions(src, lake.expand(src.url_list), out, profile.download, None, name)
        return Ingested(d.result, d.manifest, time.perf_counter() - started, _sample(name, d.result.kept))
    result, fmt = _read(name, profile, lake)
    manifest = publish(lake.raw(name), result, fmt)
    return Ingested(result, manifest, time.perf_counter() - started, _sample(name, result.kept))
