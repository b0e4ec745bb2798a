"""The raw corpora of the paper as a registry of specs: how each is read, how its rows are stored.

A new source is one `SourceSpec` here: its reader (from the profile's `sources.<name>` settings), its
storage layout and the id that decides each row's chunk downstream. Image-caption URL lists have no
reader: `pipeline.raw.ingest` downloads them with img2dataset.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal

from pipeline.config import Profile
from pipeline.lake import Lake
from pipeline.raw.accounting import Stream
from pipeline.raw.conversations import read_conversations
from pipeline.raw.flores import read_flores
from pipeline.raw.mmmu import read_mmmu
from pipeline.raw.wit import read_wit
from pipeline.raw.xstorycloze import read_xstorycloze

Row = dict[str, Any]
# (the source's settings, profile, lake) -> the stream of kept rows and quarantined records, in input
# order (see pipeline.raw.accounting); checks that stop the whole source happen when it is called
Reader = Callable[[Any, Profile, Lake], Stream]


@dataclass(frozen=True)
class SourceSpec:
    name: str
    description: str
    # captions: a URL list downloaded into webdataset shards; documents: rows of varying shape kept as
    # the source wrote them (LLaVA format); table: one column per field
    layout: Literal["captions", "documents", "table"]
    row_id: Callable[[Row], str]  # stable across runs: decides the row's chunk in later steps
    read: Reader | None = None  # None for captions


def _conversations(name: str) -> Reader:
    def read(src, profile: Profile, lake: Lake) -> Stream:
        root = lake.expand(src.image_root) if src.image_root else None
        return read_conversations(lake.expand(src.path), name, root, limits=profile.raw_limits)
    return read


def _caption_id(name: str) -> Callable[[Row], str]:
    return lambda r: f"{name}/{r['key']}"


_by_id = lambda r: str(r["id"])  # noqa: E731

SOURCES: dict[str, SourceSpec] = {s.name: s for s in (
    SourceSpec("cc_sbu", "CC + SBU image-caption pairs, downloaded into webdataset shards (stage 1)",
               "captions", _caption_id("cc_sbu")),
    SourceSpec("laion", "LAION image-caption pairs, downloaded into webdataset shards (stage 1)",
               "captions", _caption_id("laion")),
    SourceSpec("llava_instruct", "LLaVA-Instruct conversations (translated later: LAVAM)",
               "documents", _by_id, _conversations("llava_instruct")),
    SourceSpec("palo", "PALO multilingual conversations (LLaVA format, already translated by its authors)",
               "documents", _by_id, _conversations("palo")),
    SourceSpec("cambrian", "Cambrian-10M rows, with images (CI) and text-only (CT)",
               "documents", _by_id, _conversations("cambrian")),
    SourceSpec("wit", "WIT image-caption rows in the profile's languages (filtered by NLLB-CLIP later)",
               "table", lambda r: r["image_url"] + "\0" + r["lang"] + "\0" + r["caption"],
               lambda src, p, lake: read_wit(lake.expand(src.path), p.languages, p.raw_limits)),
    SourceSpec("flores", "Flores-200 parallel sentences, eleven languages (MText)", "table", _by_id,
               lambda src, p, lake: read_flores(lake.expand(src.folder), src.split, p.languages, p.raw_limits)),
    SourceSpec("xstorycloze", "XStoryCloze stories in the profile's languages (MText)", "table",
               lambda r: f"{r['lang']}/{r['story_id']}",
               lambda src, p, lake: read_xstorycloze(lake.expand(src.path), p.raw_limits)),
    SourceSpec("mmmu", "MMMU multiple-choice and open questions (evaluation)", "table", _by_id,
               lambda src, p, lake: read_mmmu(lake.expand(src.path), p.raw_limits)),
)}
ALL_SOURCES = tuple(SOURCES)


def source(name: str) -> SourceSpec:
    try:
        return SOURCES[name]
    except KeyError:
        raise ValueError(f"unknown source {name!r}; valid: {list(SOURCES)}") from None
