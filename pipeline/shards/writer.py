"""Write one shard set: Arrow IPC stream files of about `target_bytes`, and a manifest, published atomically.

A shard set is one folder, `shards/<set>/<lang>/` (or `.../chunk-<i>-of-<n>/` for a chunked dataset):

    manifest.json              files with rows, bytes and sha256; schema version; input data versions
    data-<digest>/shard-00000.arrow, shard-00001.arrow, ...

How a write is made safe:
- rows are stored in an order fixed by the seed and the row ids (not by the input order), and every
  byte of a file depends only on the rows and the settings: a re-run writes byte-identical files;
- files are written into `.staging-<random>/`; once all are closed, the folder is renamed to
  `data-<digest of its files>/`, and then `manifest.json` is replaced (atomically) by one listing them:
  the manifest is the publication. A reader follows the manifest, so it sees the old set or the new one,
  never a mix; the previous `data-*` folder is removed only after the new manifest is in place;
- a killed run leaves a `.staging-*` folder (swept by the next run) or an unreferenced `data-*` folder
  (reused when the re-run produces the same digest, else removed): the re-run finishes the set with every
  row exactly once.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import pyarrow as pa
from upath import UPath

from pipeline.lake import FileEntry, Manifest, sha256_file, write_text_atomic

SCHEMA_VERSION = 1
SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),  # unique within the set
        pa.field("dataset", pa.string(), nullable=False),  # the shard set (cc_sbu, lavam, ci_m, flores, ...)
        pa.field("source", pa.string(), nullable=False),  # the corpus the row comes from (raw source name)
        pa.field("lang", pa.string(), nullable=False),  # FLORES code of the answer
        pa.field("conversations", pa.list_(pa.struct([pa.field("from", pa.string()), pa.field("value", pa.string())])),
                 nullable=False),  # LLaVA format: [{"from": "human"|"gpt", "value": ...}, ...]
        pa.field("image", pa.binary()),  # the encoded image (JPEG/PNG bytes as stored); null: text-only
        pa.field("caption", pa.string()),  # stage-1 and WIT sets: the caption; else null
    ],
    metadata={b"mmg4.shard_schema_version": str(SCHEMA_VERSION).encode()},
)
MANIFEST = "manifest.json"
DATA_PREFIX = "data-"
STAGING_PREFIX = ".staging-"
MAX_BATCH_BYTES = 8 << 20


class ImageUnavailable(ValueError):
    """A row's image cannot be read (missing file, member not in its tar); the message names it."""


class ImageRef:
    """Where a row's encoded image is; read only when the row is written, in the stored order."""

    def read(self) -> bytes:
        raise NotImplementedError


@dataclass(frozen=True)
class FileImage(ImageRef):
    path: str

    def read(self) -> bytes:
        try:
            with UPath(self.path).open("rb") as f:
                return f.read()
        except (FileNotFoundError, IsADirectoryError):
            raise ImageUnavailable(f"image missing: {self.path}") from None


@dataclass(frozen=True)
class TarImage(ImageRef):
    """A member of a webdataset tar, read at its data offset (no tar parsing per row)."""

    tar: str
    member: str
    offset: int
    size: int

    def read(self) -> bytes:
        try:
            with open(self.tar, "rb") as f:
                f.seek(self.offset)
                data = f.read(self.size)
        except FileNotFoundError:
            raise ImageUnavailable(f"image missing: {self.tar} is gone (member {self.member})") from None
        if len(data) != self.size:
            raise ImageUnavailable(f"image truncated: {self.tar} member {self.member}")
        return data


@dataclass(frozen=True)
class InlineImage(ImageRef):
    data: bytes

    def read(self) -> bytes:
        return self.data


@dataclass
class Example:
    """One training example before it is written: the shard row, with its image still on disk."""

    id: str
    dataset: str
    source: str
    lang: str
    conversations: list[dict[str, str]]
    image: ImageRef | None = None
    caption: str | None = None
    origin: str | None = None  # the input row it comes from, when one row gives several examples (Flores)

    def row(self, image: bytes | None) -> dict[str, Any]:
        return {"id": self.id, "dataset": self.dataset, "source": self.source, "lang": self.lang,
                "conversations": self.conversations, "image": image, "caption": self.caption}


def order_key(seed: int, row_id: str) -> bytes:
    """The stored position of a row: a seeded hash of its id (independent of the input order)."""
    return hashlib.blake2b(f"{seed}\0{row_id}".encode("utf-8", "surrogatepass"), digest_size=8).digest()


@dataclass
class WriteReport:
    manifest: Manifest
    rows: int
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (row id, reason): unreadable images


def _is_local(p: UPath) -> bool:
    return getattr(p, "protocol", "") in ("", "file", "local")


def rmtree(p: UPath) -> None:
    """Remove a folder (local or object store); nothing if it is not there."""
    if _is_local(p):
        shutil.rmtree(p.path, ignore_errors=True)
    elif p.exists():
        p.fs.rm(p.path, recursive=True)


def _rename(src: UPath, dst: UPath) -> None:
    if _is_local(src):
        os.replace(src.path, dst.path)
    else:
        src.fs.mv(src.path, dst.path, recursive=True)


def sweep(folder: UPath) -> list[str]:
    """Remove what a killed writer left in `folder`: staging folders and half-written manifests."""
    removed = []
    if not folder.exists():
        return removed
    for p in folder.iterdir():
        if p.name.startswith(STAGING_PREFIX) or (p.name.startswith(f".{MANIFEST}.") and p.name.endswith(".tmp")):
            rmtree(p) if p.is_dir() else p.unlink()
            removed.append(p.name)
    return removed


def _write_files(staging: UPath, ordered: list[Example], target_bytes: int, batch_rows: int,
                 skipped: list[tuple[str, str]], after_file: Callable[[str], None] | None) -> dict[str, int]:
    files: dict[str, int] = {}
    state: dict[str, Any] = {"sink": None, "writer": None, "rows": 0}
    batch: list[dict[str, Any]] = []
    batch_limit = max(1, min(target_bytes // 4, MAX_BATCH_BYTES))

    def close_file() -> None:
        state["writer"].close()
        state["sink"].close()
        name = f"shard-{len(files):05d}.arrow"
        files[name] = state["rows"]
        state.update(sink=None, writer=None, rows=0)
        if after_file:
            after_file(name)

    def flush() -> None:
        if not batch:
            return
        if state["writer"] is None:
            state["sink"] = (staging / f"shard-{len(files):05d}.arrow").open("wb")
            state["writer"] = pa.ipc.new_stream(state["sink"], SCHEMA)
        state["writer"].write_batch(pa.RecordBatch.from_pylist(batch, schema=SCHEMA))
        state["rows"] += len(batch)
        batch.clear()
        state["sink"].flush()
        if state["sink"].tell() >= target_bytes:
            close_file()

    size = 0
    for ex in ordered:
        try:
            image = ex.image.read() if ex.image is not None else None
        except ImageUnavailable as e:
            skipped.append((ex.id, str(e)))
            continue
        batch.append(ex.row(image))
        size += len(image or b"") + sum(len(t["value"]) for t in ex.conversations) + len(ex.caption or "")
        if len(batch) >= batch_rows or size >= batch_limit:
            flush()
            size = 0
    flush()
    if state["writer"] is not None:
        close_file()
    return files


def _digest(entries: Iterable[tuple[str, str]]) -> str:
    h = hashlib.sha256()
    for name, sha in sorted(entries):
        h.update(f"{name}\0{sha}\0".encode())
    return h.hexdigest()


def write_shard_set(folder: str | os.PathLike, examples: list[Example], *, target_bytes: int, batch_rows: int = 256,
                    seed: int = 0, extra: dict[str, Any] | None = None,
                    after_file: Callable[[str], None] | None = None) -> WriteReport:
    """Write `examples` as the shard set in `folder` (replacing the one there) and return its manifest.

    `after_file(name)` is called after each file is closed (progress; tests kill the writer there)."""
    folder = UPath(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sweep(folder)
    seen: set[str] = set()
    for ex in examples:
        if ex.id in seen:
            raise ValueError(f"{folder}: duplicate row id {ex.id!r} in one shard set")
        seen.add(ex.id)
    ordered = sorted(examples, key=lambda e: order_key(seed, e.id))
    staging = folder / f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    skipped: list[tuple[str, str]] = []
    try:
        files = _write_files(staging, ordered, target_bytes, batch_rows, skipped, after_file)
        hashes = {name: sha256_file(staging / name) for name in files}
        data_dir = f"{DATA_PREFIX}{_digest(hashes.items())[:16]}"
        final = folder / data_dir
        if final.exists() and all((final / n).exists() and sha256_file(final / n) == h for n, h in hashes.items()):
            rmtree(staging)  # a killed run already published these very files
        else:
            rmtree(final)
            _rename(staging, final)
    except BaseException:
        rmtree(staging)
        raise
    entries = [FileEntry(path=f"{data_dir}/{name}", rows=rows, bytes=(final / name).stat().st_size, sha256=hashes[name])
               for name, rows in files.items()]
    manifest = Manifest(files=entries, extra={"schema_version": SCHEMA_VERSION, "rows": sum(files.values()),
                                              "order_seed": seed, "target_bytes": target_bytes, **(extra or {})})
    write_text_atomic(folder / MANIFEST, manifest.to_json())  # the publication
    for p in folder.iterdir():  # older versions, now unreferenced
        if p.name.startswith(DATA_PREFIX) and p.name != data_dir:
            rmtree(p)
    return WriteReport(manifest, sum(files.values()), skipped)
