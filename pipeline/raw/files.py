"""Finding and reading input files: a plain path or a glob, on any fsspec filesystem (local, hf://, s3://).

Files are read as bytes, a chunk at a time, and split into lines here, so a reader decodes each line
itself (a bad byte spoils one line, not the file) and no line longer than the row limit is ever held
in memory.
"""
from __future__ import annotations

import gzip
import zlib
from contextlib import contextmanager
from typing import IO, Iterator

from upath import UPath

from pipeline.raw.accounting import SourceError

CHUNK = 1 << 20


def expand(path: str) -> list[UPath]:
    """All files that `path` names (one file, or a glob), sorted, as UPaths on the same filesystem."""
    p = UPath(path)
    if not any(ch in path for ch in "*?["):
        return [p] if p.exists() else []
    local = getattr(p, "protocol", "") in ("", "file", "local")
    matches = sorted(p.fs.glob(p.path))
    return [UPath(m) if local else UPath(f"{p.protocol}://{m}") for m in matches]


@contextmanager
def open_binary(path: UPath) -> Iterator[IO[bytes]]:
    """The file's bytes, gunzipped when its name ends in .gz."""
    with path.open("rb") as raw:
        if path.name.endswith(".gz"):
            with gzip.GzipFile(fileobj=raw) as f:
                yield f
        else:
            yield raw


def read_chunks(f: IO[bytes], name: str) -> Iterator[bytes]:
    """The file in chunks; a file that cannot be read or decompressed is a `SourceError` naming it."""
    offset = 0
    while True:
        try:
            chunk = f.read(CHUNK)
        except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
            raise SourceError(f"{name}: cannot read the file after byte {offset} ({e.__class__.__name__}: {e}); "
                              f"the file is damaged or truncated: download it again") from None
        if not chunk:
            return
        offset += len(chunk)
        yield chunk


def iter_lines(f: IO[bytes], name: str, max_bytes: int) -> Iterator[tuple[int, bytes | None]]:
    """(1-based line number, the line's bytes without its newline) for every line of `f`; `None` instead
    of the bytes for a line longer than `max_bytes`, which is skipped without being held in memory."""
    lineno = 0
    pending = bytearray()
    too_long = False  # the line being read is already over the limit: its bytes are dropped
    for chunk in read_chunks(f, name):
        start = 0
        while True:
            nl = chunk.find(b"\n", start)
            if nl < 0:
                break
            lineno += 1
            if too_long or len(pending) + nl - start > max_bytes:
                yield lineno, None
            elif pending:
                pending += chunk[start:nl]
                yield lineno, bytes(pending)
            else:
                yield lineno, chunk[start:nl]
            pending.clear()
            too_long = False
            start = nl + 1
        if not too_long:
            pending += chunk[start:]
            if len(pending) > max_bytes:
                too_long = True
                pending.clear()
    if pending or too_long:
        yield lineno + 1, None if too_long else bytes(pending)


def decode(line: bytes) -> tuple[str | None, str | None]:
    """(text, None), or (None, the reason) for bytes that are not UTF-8."""
    try:
        return line.decode("utf-8"), None
    except UnicodeDecodeError as e:
        return None, (f"bad encoding: byte 0x{line[e.start]:02x} at byte {e.start + 1} of the line is not UTF-8 "
                      f"({e.reason}); re-encode the file as UTF-8")
