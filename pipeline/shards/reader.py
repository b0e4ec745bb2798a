"""Read shard sets back, verifying every file against the manifest first.

`read_shard_set(folder)` yields the rows of a set file by file; each file is read once, hashed, and compared
with the manifest's size and sha256 before a row of it is used, so a corrupt, truncated or swapped file is
an error that names it (`ShardCorruptError`), never silently wrong training data. `verify_shard_set` checks
a whole set without decoding it. The files are plain Arrow IPC streams: `datasets.Dataset.from_file(path)`
and `load_dataset("arrow", data_files=[...])` open them too (without the verification).
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Iterator

import pyarrow as pa
from upath import UPath

from pipeline.lake import Manifest
from pipeline.shards.writer import MANIFEST, SCHEMA, SCHEMA_VERSION


class ShardError(RuntimeError):
    """A shard set that cannot be used; the message names the folder or file and the fix."""


class ShardCorruptError(ShardError):
    """A shard file that does not match its manifest (size or sha256), or is missing."""


def read_manifest(folder: str | os.PathLike) -> Manifest:
    folder = UPath(folder)
    if not (folder / MANIFEST).exists():
        raise ShardError(f"no shard set at {folder}: {MANIFEST} is missing (materialise its shards_* asset)")
    try:
        manifest = Manifest.read(folder)
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ShardCorruptError(f"{folder / MANIFEST}: unreadable manifest ({e}); re-materialise the set") from None
    version = manifest.extra.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ShardError(f"{folder}: shard schema version {version}, this code reads {SCHEMA_VERSION}; "
                         f"re-materialise the set")
    return manifest


def _checked_bytes(folder: UPath, entry) -> bytes:
    path = folder / entry.path
    try:
        with path.open("rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ShardCorruptError(f"shard file missing: {path} (listed in {folder / MANIFEST})") from None
    if len(data) != entry.bytes:
        raise ShardCorruptError(f"corrupt shard file {path}: {len(data)} bytes, the manifest says {entry.bytes}")
    sha = hashlib.sha256(data).hexdigest()
    if sha != entry.sha256:
        raise ShardCorruptError(f"corrupt shard file {path}: sha256 {sha[:12]}..., the manifest says "
                                f"{entry.sha256[:12]}...; re-materialise the set")
    return data


def verify_shard_set(folder: str | os.PathLike, hashes: bool = True) -> Manifest:
    """Check every file of a set against its manifest (size only when `hashes` is False); the manifest."""
    folder = UPath(folder)
    manifest = read_manifest(folder)
    for entry in manifest.files:
        if hashes:
            _checked_bytes(folder, entry)
            continue
        path = folder / entry.path
        if not path.exists():
            raise ShardCorruptError(f"shard file missing: {path} (listed in {folder / MANIFEST})")
        if path.stat().st_size != entry.bytes:
            raise ShardCorruptError(f"corrupt shard file {path}: {path.stat().st_size} bytes, "
                                    f"the manifest says {entry.bytes}")
    return manifest


def iter_tables(folder: str | os.PathLike, columns: list[str] | None = None) -> Iterator[pa.Table]:
    """Each file of a set as a table, after checking it against the manifest."""
    folder = UPath(folder)
    for entry in read_manifest(folder).files:
        data = _checked_bytes(folder, entry)
        try:
            table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
        except pa.ArrowInvalid as e:
            raise ShardCorruptError(f"corrupt shard file {folder / entry.path}: not an Arrow stream ({e})") from None
        if not table.schema.equals(SCHEMA, check_metadata=False):
            raise ShardCorruptError(f"{folder / entry.path}: schema {table.schema} is not the shard schema")
        yield table.select(columns) if columns else table


def read_shard_set(folder: str | os.PathLike, columns: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """The rows of a set, in the stored order, every file verified before use."""
    for table in iter_tables(folder, columns):
        yield from table.to_pylist()


def shard_files(folder: str | os.PathLike) -> list[str]:
    """The files of a set (absolute paths), as `datasets` wants them: `load_dataset("arrow", data_files=...)`."""
    folder = UPath(folder)
    return [str(folder / f.path) for f in read_manifest(folder).files]
