"""The datasets the paper translates, as a registry of specs: where the rows come from (one chunk at a
time), which of their texts are translated, and how a record is rebuilt around the translations.

`pipeline.translation.run` is the one path every spec goes through: records -> texts -> segments ->
unique sentences -> translation memory -> model for the misses -> records in their original format,
plus the language and the English source.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from upath import UPath

from pipeline.lake import Lake
from pipeline.raw.conversations import has_image
from pipeline.raw.mmmu import parse_options
from pipeline.rows import read_parquet, read_rows

Row = dict[str, Any]


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset the paper translates: where its rows come from and which of their texts are translated."""

    name: str  # the translated dataset's name (the asset is translated_<name>)
    sources: tuple[str, ...]  # raw sources it is read from
    paper_name: str  # what the paper calls the translated set
    load: Callable[[Lake, int, int], list[Row]]  # (lake, chunk, n_chunks): the rows of one chunk
    texts: Callable[[Row], list[str]]
    rebuild: Callable[[Row, list[str], str], Row]
    fmt: str  # jsonl | parquet


# --- LLaVA-format conversations -------------------------------------------------------------------

def _conv_texts(row: Row) -> list[str]:
    return [turn["value"] for turn in row["conversations"]]


def _conv_rebuild(row: Row, texts: list[str], lang: str) -> Row:
    turns = [{**turn, "value": text} for turn, text in zip(row["conversations"], texts)]
    # the English stays alongside
    return {**row, "conversations": turns, "lang": lang, "source_conversations": row["conversations"]}


def _raw_rows(lake: Lake, name: str, chunk: int, n_chunks: int) -> list[Row]:
    """One chunk of a raw source's rows: only the row groups of its bucket range are read."""
    return read_parquet(lake.raw(name, "rows.parquet"), chunk, n_chunks)


def _conversations(name: str, keep: Callable[[Row], bool] = lambda r: True) -> Callable[[Lake, int, int], list[Row]]:
    return lambda lake, chunk, n: [r for r in _raw_rows(lake, name, chunk, n) if keep(r)]


# --- stage-1 captions -----------------------------------------------------------------------------

def _captions(lake: Lake, chunk: int, n_chunks: int) -> list[Row]:
    return [{"source": name, "key": r["key"], "caption": r["caption"]}
            for name in ("cc_sbu", "laion") for r in _raw_rows(lake, name, chunk, n_chunks)]


def _caption_rebuild(row: Row, texts: list[str], lang: str) -> Row:
    return {**row, "caption": texts[0], "lang": lang, "source_caption": row["caption"]}


# --- MMMU: question and options; the answer letter does not change --------------------------------

def _mmmu(lake: Lake, chunk: int, n_chunks: int) -> list[Row]:
    return _raw_rows(lake, "mmmu", chunk, n_chunks)


def _mmmu_texts(row: Row) -> list[str]:
    return [row["question"], *parse_options(row["options"])]


def _mmmu_rebuild(row: Row, texts: list[str], lang: str) -> Row:
    return {**row, "question": texts[0], "options": str(texts[1:]), "lang": lang,
            "source_question": row["question"], "source_options": row["options"]}


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec("llava_instruct", ("llava_instruct",), "LAVAM", _conversations("llava_instruct"),
                    _conv_texts, _conv_rebuild, "jsonl"),
        DatasetSpec("cambrian_image", ("cambrian",), "CI M", _conversations("cambrian", has_image),
                    _conv_texts, _conv_rebuild, "jsonl"),
        DatasetSpec("cambrian_text", ("cambrian",), "CT M", _conversations("cambrian", lambda r: not has_image(r)),
                    _conv_texts, _conv_rebuild, "jsonl"),
        DatasetSpec("captions", ("cc_sbu", "laion"), "stage-1 captions", _captions,
                    lambda r: [r["caption"]], _caption_rebuild, "jsonl"),
        DatasetSpec("mmmu", ("mmmu",), "MMMU Multi", _mmmu, _mmmu_texts, _mmmu_rebuild, "parquet"),
    )
}


# --- chunks: a large dataset's rows split into several partitions per language ----------------------

def partition_folder(lake: Lake, dataset: str, lang: str, chunk: int, n_chunks: int) -> UPath:
    """translated/<dataset>/<lang>/, or .../<lang>/chunk-<i>-of-<n>/ when the dataset is chunked.

    The count is in the name and readers take only the folders of the current count, so changing it
    never mixes old and new rows; the old files stay until removed."""
    folder = lake.translated(dataset, lang)
    return folder if n_chunks == 1 else folder / f"chunk-{chunk:03d}-of-{n_chunks:03d}"


def read_translated(lake: Lake, dataset: str, lang: str, n_chunks: int) -> list[Row]:
    """All translated rows of one language, every chunk of it."""
    return [r for c in range(n_chunks) for r in read_rows(partition_folder(lake, dataset, lang, c, n_chunks))]
