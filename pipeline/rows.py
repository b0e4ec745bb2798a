"""Rows in the lake: JSONL and Parquet, written atomically, and chunks that read only their own rows.

Every row of a raw source carries `_bucket`, a 32-bit hash of its id. A later step that splits a
dataset into `n` chunks (translation partitions) takes chunk `c` as the bucket range
`[c * 2**32 / n, (c + 1) * 2**32 / n)`; the Parquet files are sorted by bucket and written in row
groups, so a chunk's read skips the row groups of other chunks by their statistics instead of loading
the whole dataset. Adding rows moves no row to another chunk: new rows change only the chunks they
fall into.

Two Parquet layouts:
- columns (tables: WIT, Flores, MMMU, captions): one column per field, the schema inferred over
  every row (pyarrow's `Table.from_pylist` looks at the first row only and silently drops keys that
  appear later);
- documents (LLaVA-format conversations, whose rows vary in shape): `id`, `_bucket` and the row as
  JSON text in `_json`, read back byte-for-byte as the source had it.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import tempfile
from itertools import chain, islice
from typing import Any, Callable, Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from pipeline.lake import atomic_open, write_jsonl_atomic

Row = dict[str, Any]
BUCKET = "_bucket"
JSON_COLUMN = "_json"
ROW_GROUP_ROWS = 8192
MEMORY_ROWS = ROW_GROUP_ROWS  # a source up to one row group is sorted in memory; a larger one is spilled to disk
SPILL_PARTS = 64  # bucket ranges of the spill: memory holds about 1/64 of a large source at a time
SPILL_BATCH = 4096
_SPACE = 1 << 32


class RowsError(ValueError):
    """Rows that cannot be stored as asked (a field whose type changes from row to row)."""


def bucket_of(row_id: str) -> int:
    """A row's bucket in [0, 2**32): a stable hash of its id."""
    return int.from_bytes(hashlib.blake2b(row_id.encode("utf-8", "surrogatepass"), digest_size=4).digest(), "big")


def chunk_of(row_id: str, n_chunks: int) -> int:
    return bucket_of(row_id) * n_chunks >> 32


def chunk_bounds(chunk: int, n_chunks: int) -> tuple[int, int]:
    """The bucket range [lo, hi) of chunk `chunk` of `n_chunks`."""
    if not 0 <= chunk < n_chunks:
        raise ValueError(f"chunk {chunk} out of range for {n_chunks} chunk(s)")
    return -(-chunk * _SPACE // n_chunks), -(-(chunk + 1) * _SPACE // n_chunks)


def chunk_keys(n_chunks: int) -> list[str]:
    """The names of the chunks ('000', '001', ...): the `chunk` dimension of partitions."""
    return [f"{i:03d}" for i in range(n_chunks)]


# --- Parquet ----------------------------------------------------------------------------------------

def _table(rows: list[Row], row_id: Callable[[Row], str] | None, documents: bool) -> pa.Table:
    buckets = [bucket_of(row_id(r)) for r in rows] if row_id else None
    if buckets is not None:  # sorted by bucket, so a chunk is a few contiguous row groups
        order = sorted(range(len(rows)), key=buckets.__getitem__)
        rows, buckets = [rows[i] for i in order], [buckets[i] for i in order]
    if documents:
        table = pa.table({
            "id": pa.array([row_id(r) if row_id else str(r.get("id", "")) for r in rows], pa.string()),
            JSON_COLUMN: pa.array([json.dumps(r, ensure_ascii=False) for r in rows], pa.string()),
        })
    elif rows:
        try:
            table = pa.Table.from_struct_array(pa.array(rows))
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise RowsError(f"rows cannot be stored as a table: a field changes type between rows ({e})") from None
    else:
        table = pa.table({})
    if buckets is not None:
        table = table.append_column(BUCKET, pa.array(buckets, pa.int64()))
    return table


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` with exactly `schema`'s columns: missing ones as nulls, the others cast."""
    cols = [table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(len(table), f.type)
            for f in schema]
    return pa.Table.from_arrays(cols, schema=schema)


def _write_parts(path: str | os.PathLike, parts: list[str]) -> None:
    """Concatenate Parquet part files into one, in order, under one schema unified over all parts."""
    try:
        schema = pa.unify_schemas([pq.read_schema(p) for p in parts], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise RowsError(f"rows cannot be stored as a table: a field changes type between rows ({e})") from None
    with atomic_open(path, "wb") as f, pq.ParquetWriter(f, schema, compression="zstd") as writer:
        for part in parts:
            writer.write_table(_conform(pq.read_table(part), schema), row_group_size=ROW_GROUP_ROWS)


def write_parquet(path: str | os.PathLike, rows: Iterable[Row], *, row_id: Callable[[Row], str] | None = None,
                  documents: bool = False, memory_rows: int = MEMORY_ROWS) -> int:
    """Write rows to one Parquet file atomically; with `row_id`, sorted by bucket so chunks read fast.

    Up to `memory_rows` rows are sorted in memory. A longer stream is spilled to SPILL_PARTS temporary
    files by bucket range (input order without `row_id`), each sorted on its own, then concatenated:
    memory holds one part, never the whole source."""
    it = iter(rows)
    head = list(islice(it, memory_rows))
    if len(head) < memory_rows:
        table = _table(head, row_id, documents)
        with atomic_open(path, "wb") as f:
            pq.write_table(table, f, row_group_size=ROW_GROUP_ROWS, compression="zstd")
        return len(head)
    n = 0
    rest = chain(head, it)
    del head  # `rest` holds it until its rows are consumed, and not a moment longer
    local = UPath(path)
    spill_dir = os.path.dirname(local.path) if getattr(local, "protocol", "") in ("", "file", "local") else None
    if spill_dir:
        os.makedirs(spill_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".rows-spill-", dir=spill_dir) as tmp:  # beside the output: room
        parts: list[str] = []
        if row_id is None:  # input order: each batch is a part
            for batch in _batches(rest, memory_rows):
                parts.append(os.path.join(tmp, f"{len(parts):06d}.parquet"))
                pq.write_table(_table(batch, None, documents), parts[-1])
                n += len(batch)
        else:
            spills = [open(os.path.join(tmp, f"{k:03d}.pkl"), "wb") for k in range(SPILL_PARTS)]
            try:
                for batch in _batches(rest, SPILL_BATCH):
                    groups: dict[int, list[Row]] = {}
                    for r in batch:
                        groups.setdefault(bucket_of(row_id(r)) * SPILL_PARTS >> 32, []).append(r)
                    for k, group in groups.items():
                        pickle.dump(group, spills[k], protocol=pickle.HIGHEST_PROTOCOL)
                    n += len(batch)
            finally:
                for s in spills:
                    s.close()
            for k in range(SPILL_PARTS):  # our own temporary files: unpickling them is safe
                with open(os.path.join(tmp, f"{k:03d}.pkl"), "rb") as f:
                    part_rows = [r for group in _frames(f) for r in group]
                if part_rows:
                    parts.append(os.path.join(tmp, f"{k:03d}.parquet"))
                    pq.write_table(_table(part_rows, row_id, documents), parts[-1])
        _write_parts(path, parts)
    return n


def _batches(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    it = iter(rows)
    while batch := list(islice(it, size)):
        yield batch


def _frames(f) -> Iterator[list[Row]]:
    while True:
        try:
            yield pickle.load(f)
        except EOFError:
            return


def read_parquet(path: str | os.PathLike, chunk: int | None = None, n_chunks: int = 1) -> list[Row]:
    """Rows of a Parquet file written by `write_parquet` (all, or one chunk of `n_chunks`)."""
    p = UPath(path)
    filters = None
    if chunk is not None and n_chunks > 1:
        lo, hi = chunk_bounds(chunk, n_chunks)
        filters = [(BUCKET, ">=", lo), (BUCKET, "<", hi)]
    with p.open("rb") as f:
        table = pq.read_table(f, filters=filters)
    if JSON_COLUMN in table.column_names:
        return [json.loads(t) for t in table.column(JSON_COLUMN).to_pylist()]
    if BUCKET in table.column_names:
        table = table.drop_columns([BUCKET])
    return table.to_pylist()


# --- JSONL and a partition folder's rows ---------------------------------------------------------------

def read_jsonl(path: str | os.PathLike) -> list[Row]:
    with UPath(path).open("r", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_rows(folder: UPath, rows: Iterable[Row], fmt: str) -> tuple[str, int]:
    """Write `folder/rows.jsonl` or `folder/rows.parquet` atomically; returns (file name, rows)."""
    if fmt == "jsonl":
        return "rows.jsonl", write_jsonl_atomic(folder / "rows.jsonl", rows)
    if fmt == "parquet":
        rows = list(rows)
        buf = io.BytesIO()
        pq.write_table(_table(rows, None, False), buf)
        with atomic_open(folder / "rows.parquet", "wb") as f:
            f.write(buf.getvalue())
        return "rows.parquet", len(rows)
    raise ValueError(f"unknown row format {fmt!r}; use 'jsonl' or 'parquet'")


def read_rows(folder: UPath) -> list[Row]:
    """The rows of a folder written by `write_rows`."""
    if (folder / "rows.jsonl").exists():
        return read_jsonl(folder / "rows.jsonl")
    return read_parquet(folder / "rows.parquet")
