"""Every dataset the paper trains on, as a registry of shard-set specs: what a set is read from, how it is
partitioned, and how its rows become training examples (`Example`: id, conversation, image, caption).

Partitioning follows the input, so a change in one input partition rewrites only the shards that hold it:
- `single`: read from raw sources (not partitioned); one asset writes one shard set per language found
  (English-only sets write `eng_Latn`; PALO, Flores and XStoryCloze write one per language);
- `translated`: one shard set per partition of a translated dataset (a language, or a chunk of one);
- `language`: one shard set per profile language, read from a per-language upstream (WIT filtered).

A loader counts what it leaves out into the step's stats: translated rows marked `translation_suspect`
are dropped with that reason unless the profile's `shards.include_suspect` is set.
"""
from __future__ import annotations

import re
import tarfile
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Literal

from upath import UPath

from pipeline.config import Profile
from pipeline.lake import Lake, safe_join, PathEscapeError
from pipeline.languages import REGISTRY, SOURCE_LANG
from pipeline.raw.conversations import has_image
from pipeline.rows import read_parquet, read_rows
from pipeline.shards import templates
from pipeline.shards.writer import Example, FileImage, ImageRef, InlineImage, TarImage
from pipeline.stats import StepStats
from pipeline.translation.datasets import partition_folder

Row = dict[str, Any]
SUSPECT_KEY = "translation_suspect"  # = pipeline.translation.run.SUSPECT_KEY (a test keeps them equal)
SUSPECT_REASON = "translation suspect: a sentence failed the translator's guard"
WIT_KEPT = "kept.parquet"


class ShardInputMissing(FileNotFoundError):
    """An input of a shard set is not in the lake yet; the message names the path and the asset to run."""


@dataclass
class LoadContext:
    profile: Profile
    lake: Lake
    stats: StepStats
    lang: str | None = None  # partitioned sets: the partition's language
    chunk: int = 0
    n_chunks: int = 1


@dataclass(frozen=True)
class ShardSetSpec:
    name: str
    paper_name: str  # what the paper calls it
    description: str
    partitioning: Literal["single", "translated", "language"]
    deps: tuple[str, ...]  # upstream assets (raw sources, translated_<dataset>, wit_filtered)
    load: Callable[[LoadContext], list[Example]]
    translated: str | None = None  # the translated dataset a `translated` set is partitioned like

    def input_folders(self, ctx: LoadContext) -> dict[str, UPath]:
        """The folders whose manifests are this set's inputs (their digests are its input data version)."""
        raw = {f"raw/{s}": ctx.lake.raw(s) for s in self.deps if not s.startswith("translated_") and s != "wit_filtered"}
        if self.partitioning == "translated":  # + the raw sources its images come from (captions: the tars)
            return {f"translated/{self.translated}/{ctx.lang}":
                    partition_folder(ctx.lake, self.translated, ctx.lang, ctx.chunk, ctx.n_chunks), **raw}
        if self.partitioning == "language":
            return {f"wit/{ctx.lang}": ctx.lake.path("wit", ctx.lang)}
        return raw


# --- inputs -------------------------------------------------------------------------------------------

def _raw_rows(ctx: LoadContext, source: str) -> list[Row]:
    path = ctx.lake.raw(source, "rows.parquet")
    if not path.exists():
        raise ShardInputMissing(f"{path} not found: materialise the raw source asset `{source}` first")
    return read_parquet(path)


def _translated_rows(ctx: LoadContext, dataset: str) -> list[Row]:
    folder = partition_folder(ctx.lake, dataset, ctx.lang, ctx.chunk, ctx.n_chunks)
    if not ((folder / "rows.jsonl").exists() or (folder / "rows.parquet").exists()):
        raise ShardInputMissing(f"{folder} has no rows: materialise translated_{dataset} partition "
                                f"{_key(ctx)} first")
    rows = read_rows(folder)
    ctx.stats.rows_in += len(rows)
    if ctx.profile.shards.include_suspect:
        ctx.stats.add(suspect_included=sum(bool(r.get(SUSPECT_KEY)) for r in rows))
        return rows
    kept = [r for r in rows if not r.get(SUSPECT_KEY)]
    dropped = len(rows) - len(kept)
    if dropped:
        ctx.stats.rows_dropped += dropped
        ctx.stats.reasons[SUSPECT_REASON] += dropped
    return kept


def _key(ctx: LoadContext) -> str:
    return ctx.lang if ctx.n_chunks == 1 else f"{ctx.chunk:03d}|{ctx.lang}"


def _image_root(ctx: LoadContext, source: str) -> str | None:
    root = getattr(ctx.profile.sources, source).image_root
    return ctx.lake.expand(root) if root else None


def _file_image(ctx: LoadContext, source: str, row: Row) -> ImageRef | None:
    if not has_image(row):
        return None
    root = _image_root(ctx, source)
    if root is None:
        raise ShardInputMissing(f"{source}: row {row.get('id')!r} names an image but sources.{source}.image_root "
                                f"is not set in the profile")
    try:
        return FileImage(str(safe_join(root, row["image"])))
    except PathEscapeError as e:
        raise ValueError(f"{source}: row {row.get('id')!r}: {e}") from None


@lru_cache(maxsize=64)
def _tar_members(tar: str, mtime_ns: int) -> dict[str, tuple[int, int]]:
    with tarfile.open(tar) as tf:
        return {m.name: (m.offset_data, m.size) for m in tf.getmembers() if m.isfile()}


def tar_index(lake: Lake, source: str) -> dict[str, TarImage]:
    """key -> the `.jpg` member of a caption source's webdataset tars (`raw/<source>/images/*.tar`)."""
    folder = lake.raw(source, "images")
    if not folder.exists():
        raise ShardInputMissing(f"{folder} not found: materialise the raw source asset `{source}` first")
    out: dict[str, TarImage] = {}
    for tar in sorted(folder.glob("*.tar"), key=lambda p: p.name):
        path = tar.path
        for name, (offset, size) in _tar_members(path, tar.stat().st_mtime_ns).items():
            if name.endswith(".jpg"):
                out[name[: -len(".jpg")]] = TarImage(path, name, offset, size)
    return out


def _captions_of(ctx: LoadContext, image_of: Callable[[Row], TarImage | None], rows: list[Row], lang: str,
                 dataset: str, default_source: str) -> list[Example]:
    settings = ctx.profile.shards
    out = []
    for r in rows:
        source = r.get("source", default_source)
        image = image_of(r)
        if image is None:
            ctx.stats.rows_quarantined += 1
            ctx.stats.reasons[f"image missing: key {r['key']} is in no tar of raw/{source}/images"] += 1
            continue
        caption = templates.normalize_caption(r["caption"], lang, settings.caption_max_words,
                                              settings.lowercase_captions)
        out.append(Example(f"{source}/{r['key']}", dataset, source, lang,
                           templates.caption_conversation(caption, lang), image, caption))
    return out


# --- loaders ------------------------------------------------------------------------------------------

def _english_captions(source: str) -> Callable[[LoadContext], list[Example]]:
    def load(ctx: LoadContext) -> list[Example]:
        rows = _raw_rows(ctx, source)
        ctx.stats.rows_in += len(rows)
        index = tar_index(ctx.lake, source)
        return _captions_of(ctx, lambda r: index.get(str(r["key"])), rows, SOURCE_LANG, source, source)
    return load


def _translated_captions(ctx: LoadContext) -> list[Example]:
    rows = _translated_rows(ctx, "captions")
    indexes: dict[str, dict[str, TarImage]] = {}

    def image_of(r: Row) -> TarImage | None:
        if r["source"] not in indexes:
            indexes[r["source"]] = tar_index(ctx.lake, r["source"])
        return indexes[r["source"]].get(str(r["key"]))

    return _captions_of(ctx, image_of, rows, ctx.lang, "captions_m", "captions")


def _conversation_example(ctx: LoadContext, dataset: str, source: str, row: Row, lang: str) -> Example:
    return Example(str(row["id"]), dataset, source, lang,
                   [{"from": t["from"], "value": t["value"]} for t in row["conversations"]],
                   _file_image(ctx, source, row))


def _english_conversations(source: str, dataset: str, keep: Callable[[Row], bool] = lambda r: True):
    def load(ctx: LoadContext) -> list[Example]:
        rows = _raw_rows(ctx, source)
        picked = [r for r in rows if keep(r)]
        ctx.stats.rows_in += len(picked)
        return [_conversation_example(ctx, dataset, source, r, SOURCE_LANG) for r in picked]
    return load


def _translated_conversations(translated: str, source: str, dataset: str):
    def load(ctx: LoadContext) -> list[Example]:
        return [_conversation_example(ctx, dataset, source, r, ctx.lang) for r in _translated_rows(ctx, translated)]
    return load


_ID_LANG = re.compile(r"^([a-z]{3}_[A-Z][a-z]{3})[_/-]")


def palo_language(rows: list[Row]) -> list[str | None]:
    """The language of each PALO row: its `lang` field, else a FLORES code leading its id, else lingua's
    verdict on its answers."""
    out: list[str | None] = []
    unknown: list[int] = []
    for i, r in enumerate(rows):
        lang = r.get("lang") or r.get("language")
        if not lang and (m := _ID_LANG.match(str(r["id"]))):
            lang = m.group(1)
        if lang in REGISTRY:
            out.append(lang)
        else:
            out.append(None)
            unknown.append(i)
    if unknown:
        from pipeline.translation.quality import LanguageIdentifier

        texts = [" ".join(t["value"] for t in rows[i]["conversations"] if t["from"] == "gpt") for i in unknown]
        for i, lang in zip(unknown, LanguageIdentifier().detect(texts)):
            out[i] = lang
    return out


def _palo(ctx: LoadContext) -> list[Example]:
    rows = _raw_rows(ctx, "palo")
    ctx.stats.rows_in += len(rows)
    out = []
    for r, lang in zip(rows, palo_language(rows)):
        if lang is None:
            ctx.stats.rows_dropped += 1
            ctx.stats.reasons["language unknown: no lang field, id prefix or detectable answer"] += 1
            continue
        out.append(_conversation_example(ctx, "palo", "palo", r, lang))
    return out


def flores_languages(row: Row) -> list[str]:
    """The languages of a Flores row (its FLORES-code columns), English first."""
    langs = sorted(k for k in row if k in REGISTRY)
    return sorted(langs, key=lambda c: c != SOURCE_LANG)


def _flores(ctx: LoadContext) -> list[Example]:
    rows = _raw_rows(ctx, "flores")
    ctx.stats.rows_in += len(rows)
    out = []
    for r in rows:
        for src, tgt, conv in templates.flores_pairs(r, flores_languages(r)):
            out.append(Example(f"flores/{r['id']}/{src}-{tgt}", "flores", "flores", tgt, conv,
                               origin=f"flores/{r['id']}"))
    return out


def _xstorycloze(ctx: LoadContext) -> list[Example]:
    rows = _raw_rows(ctx, "xstorycloze")
    ctx.stats.rows_in += len(rows)
    return [Example(f"xstorycloze/{r['lang']}/{r['story_id']}", "xstorycloze", "xstorycloze", r["lang"],
                    templates.story_conversation(r)) for r in rows]


def wit_kept_path(lake: Lake, lang: str) -> UPath:
    """What `wit_filtered` writes per language: id, lang, caption, page_title, image_url, score, image."""
    return lake.path("wit", lang, WIT_KEPT)


def _wit(ctx: LoadContext) -> list[Example]:
    path = wit_kept_path(ctx.lake, ctx.lang)
    if not path.exists():
        raise ShardInputMissing(f"{path} not found: WIT shards need the `wit_filtered` asset's partition "
                                f"{ctx.lang} (the NLLB-CLIP filter); materialise it first")
    rows = read_parquet(path)
    ctx.stats.rows_in += len(rows)
    out = []
    for r in rows:
        if not r.get("image"):
            ctx.stats.rows_quarantined += 1
            ctx.stats.reasons["image missing: no image bytes in wit kept row"] += 1
            continue
        out.append(Example(f"wit/{r['id']}", "wit", "wit", r["lang"],
                           templates.wit_conversation(r["caption"], r.get("page_title"), r["lang"]),
                           InlineImage(r["image"]), r["caption"]))
    return out


SHARD_SETS: dict[str, ShardSetSpec] = {s.name: s for s in (
    ShardSetSpec("cc_sbu", "ccSBU", "CC + SBU captions in English, from the webdataset tars (stages 1-2)",
                 "single", ("cc_sbu",), _english_captions("cc_sbu")),
    ShardSetSpec("laion", "LAION", "LAION captions in English, from the webdataset tars (stages 1-2)",
                 "single", ("laion",), _english_captions("laion")),
    ShardSetSpec("captions_m", "captions M", "CC/SBU + LAION captions translated, images from the tars (stage 1)",
                 "translated", ("translated_captions", "cc_sbu", "laion"), _translated_captions, "captions"),
    ShardSetSpec("llava_instruct", "LLaVA-Instruct", "LLaVA-Instruct conversations in English",
                 "single", ("llava_instruct",), _english_conversations("llava_instruct", "llava_instruct")),
    ShardSetSpec("lavam", "LAVAM", "LLaVA-Instruct translated (stage 2)", "translated",
                 ("translated_llava_instruct",), _translated_conversations("llava_instruct", "llava_instruct", "lavam"),
                 "llava_instruct"),
    ShardSetSpec("palo", "PALO", "PALO multilingual conversations, one set per language (stage 2)",
                 "single", ("palo",), _palo),
    ShardSetSpec("ci", "CI", "Cambrian rows with images, English", "single", ("cambrian",),
                 _english_conversations("cambrian", "ci", has_image)),
    ShardSetSpec("ci_m", "CI M", "Cambrian rows with images, translated", "translated",
                 ("translated_cambrian_image",), _translated_conversations("cambrian_image", "cambrian", "ci_m"),
                 "cambrian_image"),
    ShardSetSpec("ct", "CT", "Cambrian text-only rows, English", "single", ("cambrian",),
                 _english_conversations("cambrian", "ct", lambda r: not has_image(r))),
    ShardSetSpec("ct_m", "CT M", "Cambrian text-only rows, translated", "translated",
                 ("translated_cambrian_text",), _translated_conversations("cambrian_text", "cambrian", "ct_m"),
                 "cambrian_text"),
    ShardSetSpec("flores", "MText (Flores)", "Flores-200 as translation instructions, every ordered language "
                 "pair; one set per target language (stage 3)", "single", ("flores",), _flores),
    ShardSetSpec("xstorycloze", "MText (XStoryCloze)", "XStoryCloze as story-ending instructions, one set per "
                 "language (stage 3)", "single", ("xstorycloze",), _xstorycloze),
    ShardSetSpec("wit", "WIT", "WIT image-caption pairs kept by the NLLB-CLIP filter, per language (stage 3)",
                 "language", ("wit_filtered",), _wit),
)}


def shard_set(name: str) -> ShardSetSpec:
    try:
        return SHARD_SETS[name]
    except KeyError:
        raise ValueError(f"unknown shard set {name!r}; valid: {list(SHARD_SETS)}") from None
