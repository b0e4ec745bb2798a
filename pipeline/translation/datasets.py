"""Translating whole datasets: which texts of a record are translated, and how the record is rebuilt.

`translate_dataset()` is the one path for every dataset the paper translates:
records -> texts -> segments -> unique sentences -> translation memory -> model for the misses
(stored batch by batch) -> records in their original format, plus the language and the English source.
"""
from __future__ import annotations

import copy
import hashlib
import io
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.corpora.base import read_jsonl
from pipeline.corpora.conversations import has_image
from pipeline.corpora.mmmu import parse_options
from pipeline.lake import Lake, Manifest, atomic_open, build_manifest, write_jsonl_atomic
from pipeline.translation.memory import TranslationMemory
from pipeline.translation.segment import join, segment
from pipeline.translation.translator import Translator

Row = dict[str, Any]


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset the paper translates: where its rows come from and which of their texts are translated."""

    name: str  # the translated dataset's name (the asset is translated_<name>)
    sources: tuple[str, ...]  # raw sources it is read from
    paper_name: str  # what the paper calls the translated set
    load: Callable[[Lake], list[Row]]
    texts: Callable[[Row], list[str]]
    rebuild: Callable[[Row, list[str], str], Row]
    fmt: str  # jsonl | parquet
    row_id: Callable[[Row], str] = lambda r: str(r["id"])  # stable across runs: decides the row's chunk


# --- LLaVA-format conversations -------------------------------------------------------------------

def _conv_texts(row: Row) -> list[str]:
    return [turn["value"] for turn in row["conversations"]]


def _conv_rebuild(row: Row, texts: list[str], lang: str) -> Row:
    out = copy.deepcopy(row)
    for turn, text in zip(out["conversations"], texts):
        turn["value"] = text
    out["lang"] = lang
    out["source_conversations"] = row["conversations"]  # the English stays alongside
    return out


def _conversations(source: str, keep: Callable[[Row], bool] = lambda r: True) -> Callable[[Lake], list[Row]]:
    return lambda lake: [r for r in read_jsonl(lake.raw(source, "rows.jsonl")) if keep(r)]


# --- stage-1 captions -----------------------------------------------------------------------------

def _captions(lake: Lake) -> list[Row]:
    rows = []
    for source in ("cc_sbu", "laion"):
        for r in pq.read_table(lake.raw(source, "rows.parquet").path).to_pylist():
            rows.append({"source": source, "key": r["key"], "caption": r["caption"]})
    return rows


def _caption_rebuild(row: Row, texts: list[str], lang: str) -> Row:
    return {**row, "caption": texts[0], "lang": lang, "source_caption": row["caption"]}


# --- MMMU: question and options; the answer letter does not change --------------------------------

def _mmmu(lake: Lake) -> list[Row]:
    return pq.read_table(lake.raw("mmmu", "rows.parquet").path).to_pylist()


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
                    lambda r: [r["caption"]], _caption_rebuild, "jsonl", row_id=lambda r: f"{r['source']}/{r['key']}"),
        DatasetSpec("mmmu", ("mmmu",), "MMMU Multi", _mmmu, _mmmu_texts, _mmmu_rebuild, "parquet"),
    )
}


# --- chunks: a large dataset's rows split into several partitions per language ----------------------

def chunk_keys(n_chunks: int) -> list[str]:
    """The names of the chunks ('000', '001', ...): the `chunk` dimension of the partitions."""
    return [f"{i:03d}" for i in range(n_chunks)]


def chunk_of(row_id: str, n_chunks: int) -> int:
    """A row's chunk, from a hash of its id: adding rows changes only the chunks they fall into."""
    return int.from_bytes(hashlib.blake2b(row_id.encode(), digest_size=8).digest(), "big") % n_chunks


def split_into_chunks(spec: DatasetSpec, rows: list[Row], n_chunks: int) -> list[list[Row]]:
    """Every chunk's rows (each row hashed once), in chunk order."""
    chunks: list[list[Row]] = [[] for _ in range(n_chunks)]
    for r in rows:
        chunks[chunk_of(spec.row_id(r), n_chunks) if n_chunks > 1 else 0].append(r)
    return chunks


def rows_in_chunk(spec: DatasetSpec, rows: list[Row], chunk: int, n_chunks: int) -> list[Row]:
    if not 0 <= chunk < n_chunks:
        raise ValueError(f"chunk {chunk} out of range for {n_chunks} chunks")
    return split_into_chunks(spec, rows, n_chunks)[chunk]


def partition_folder(lake: Lake, dataset: str, lang: str, chunk: int, n_chunks: int):
    """translated/<dataset>/<lang>/, or .../<lang>/chunk-<i>-of-<n>/ when the dataset is chunked.

    The count is in the name and readers take only the folders of the current count, so changing it
    never mixes old and new rows; the old files stay until removed."""
    folder = lake.translated(dataset, lang)
    return folder if n_chunks == 1 else folder / f"chunk-{chunk:03d}-of-{n_chunks:03d}"


def read_translated(lake: Lake, dataset: str, lang: str, n_chunks: int) -> list[Row]:
    """All translated rows of one language, every chunk of it."""
    return [r for c in range(n_chunks) for r in read_rows(partition_folder(lake, dataset, lang, c, n_chunks))]


@dataclass
class RunStats:
    """What one translation run did; every field goes into the asset's metadata."""

    rows: int = 0
    texts: int = 0
    segments_total: int = 0  # translatable sentences, repeats included
    segments_unique: int = 0
    cache_hits: int = 0  # unique sentences found in the translation memory
    model_calls: int = 0  # unique sentences sent to the model
    retried: int = 0
    tokens_out: int = 0
    seconds: float = 0.0
    model_seconds: float = 0.0

    @property
    def segments_per_s(self) -> float:
        return self.model_calls / self.seconds if self.seconds and self.model_calls else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "seconds": round(self.seconds, 3), "model_seconds": round(self.model_seconds, 3),
                "segments_per_s": round(self.segments_per_s, 2),
                "tokens_per_s": round(self.tokens_out / self.model_seconds, 1) if self.model_seconds else 0.0}


def translate_texts(
    texts: list[str], tgt_lang: str, translator: Translator, memory: TranslationMemory,
    src_lang: str = "eng_Latn", log: Callable[[str], None] = print, stats: RunStats | None = None,
) -> list[str]:
    """Translate whole texts (structure kept verbatim), through the memory; only misses hit the model."""
    stats = stats or RunStats()
    started = time.perf_counter()
    segmented = [segment(t) for t in texts]
    sentences = [s.text for segs in segmented for s in segs if s.translate]
    unique = list(dict.fromkeys(sentences))
    known = memory.get_many(unique, tgt_lang)
    missing = [s for s in unique if s not in known]
    log(f"{tgt_lang}: {len(sentences)} sentences, {len(unique)} unique, {len(known)} in memory, "
        f"{len(missing)} to translate")
    if missing:
        before = (translator.stats.seconds, translator.stats.tgt_tokens, translator.stats.retried)
        done = [0]

        def store(batch: list[tuple[str, str, str]]) -> None:
            memory.put_many(batch)  # durable before the next batch starts
            done[0] += len(batch)
            log(f"{tgt_lang}: translated {done[0]}/{len(missing)} sentences")

        translated = translator.translate([(s, tgt_lang) for s in missing], src_lang=src_lang, on_batch=store)
        known.update(zip(missing, translated))
        stats.model_seconds += translator.stats.seconds - before[0]
        stats.tokens_out += translator.stats.tgt_tokens - before[1]
        stats.retried += translator.stats.retried - before[2]
    out = [join(segs, [known[s.text] for s in segs if s.translate], tgt_lang) for segs in segmented]
    stats.texts += len(texts)
    stats.segments_total += len(sentences)
    stats.segments_unique += len(unique)
    stats.cache_hits += len(unique) - len(missing)
    stats.model_calls += len(missing)
    stats.seconds += time.perf_counter() - started
    return out


def translate_rows(
    spec: DatasetSpec, rows: list[Row], tgt_lang: str, translator: Translator, memory: TranslationMemory,
    log: Callable[[str], None] = print,
) -> tuple[list[Row], RunStats]:
    stats = RunStats(rows=len(rows))
    per_row = [spec.texts(r) for r in rows]
    flat = [t for texts in per_row for t in texts]
    translated = iter(translate_texts(flat, tgt_lang, translator, memory, log=log, stats=stats))
    out = [spec.rebuild(r, [next(translated) for _ in texts], tgt_lang) for r, texts in zip(rows, per_row)]
    return out, stats


def write_rows(folder, rows: Iterable[Row], fmt: str, extra: dict[str, Any]) -> Manifest:
    """Write a translated partition atomically, with its manifest (the data version)."""
    rows = list(rows)
    if fmt == "jsonl":
        write_jsonl_atomic(folder / "rows.jsonl", rows)
        name = "rows.jsonl"
    else:
        name = "rows.parquet"
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows), buf)
        with atomic_open(folder / name, "wb") as f:
            f.write(buf.getvalue())
    return build_manifest(folder, {name: len(rows)}, extra=extra)


def read_rows(folder) -> list[Row]:
    if (folder / "rows.jsonl").exists():
        return read_jsonl(folder / "rows.jsonl")
    return pq.read_table((folder / "rows.parquet").path).to_pylist()
