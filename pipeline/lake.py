"""The lake: one storage root per profile, with a fixed layout, atomic writes and manifests.

Layout under the root (every step writes only below its own folder):

    toy_world/<source>/...     the toy profile's offline copies of the real corpora (real formats)
    raw/<source>/...           validated raw corpora: data files, quarantine.jsonl, manifest.json
    models/nllb/{hf,ct2}       the NLLB model (toy: trained here) and its CTranslate2 conversion
    tm/translation_memory.sqlite   the default translation memory
    translated/<dataset>/<lang>/   rows in the source's format + the language + the English source
    shards/<stage>/...         Arrow shards per training stage (later steps)

The root is a local folder by default; any fsspec URL (s3://, gs://, memory://) works through
universal_pathlib. Writes go to a temporary name and are renamed into place, so a reader never sees
half a file and a killed run leaves no torn output behind.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Iterator

from upath import UPath

from pipeline.config import REPO_ROOT


class PathEscapeError(ValueError):
    """A relative path in the data tried to leave its root (`../`, absolute paths)."""


def safe_join(root: str | os.PathLike, relative: str) -> UPath:
    """Join a data-supplied relative path under `root`, refusing anything that escapes it."""
    rel = PurePosixPath(str(relative).replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts or str(relative).strip() == "":
        raise PathEscapeError(f"path {relative!r} is not a plain relative path inside {root}")
    return UPath(root).joinpath(*rel.parts)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# what a plain open() would give: 0666 less the umask (read once: os.umask can only be read by setting it)
_FILE_MODE = 0o666 & ~_umask()


def _is_local(path: UPath) -> bool:
    return getattr(path, "protocol", "") in ("", "file", "local")


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open `path` for writing; the file appears under its name only if the block finishes."""
    target = UPath(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if _is_local(target):
        local = Path(target.path)
        fd, tmp = tempfile.mkstemp(prefix=f".{local.name}.", suffix=".tmp", dir=local.parent)
        try:
            os.fchmod(fd, _FILE_MODE)  # mkstemp makes the file private (0600); a lake is meant to be shared
            with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, local)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
    else:  # object stores: a PUT is all-or-nothing already; write beside, then move
        tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
        with tmp.open(mode) as f:
            yield f
        tmp.fs.mv(tmp.path, target.path)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_jsonl_atomic(path: str | os.PathLike, rows) -> int:
    n = 0
    with atomic_open(path, "wb") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n")
            n += 1
    return n


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with UPath(path).open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative to the manifest's folder
    rows: int | None
    bytes: int
    sha256: str


@dataclass
class Manifest:
    """What a step wrote: files with rows, sizes and hashes. Its digest is the step's data version."""

    files: list[FileEntry] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    @property
    def total_rows(self) -> int:
        return sum(f.rows or 0 for f in self.files)

    @property
    def total_bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    def digest(self) -> str:
        """Content hash of the whole output: same content, same digest, whatever the write times.

        A step whose files carry write times (tar headers) records `content_digest` in `extra`,
        computed over the content alone; it then stands for the files."""
        if self.extra.get("content_digest"):
            return str(self.extra["content_digest"])[:32]
        h = hashlib.sha256()
        for f in sorted(self.files, key=lambda f: f.path):
            h.update(f"{f.path}\0{f.sha256}\0".encode())
        return h.hexdigest()[:32]

    def to_json(self) -> str:
        return json.dumps(
            {"files": [asdict(f) for f in self.files], "extra": self.extra, "digest": self.digest()},
            indent=2,
            sort_keys=True,
        )

    @classmethod
    def read(cls, folder: str | os.PathLike) -> "Manifest":
        data = json.loads((UPath(folder) / "manifest.json").read_text(encoding="utf-8"))
        return cls(files=[FileEntry(**f) for f in data["files"]], extra=data.get("extra", {}))


def build_manifest(folder: str | os.PathLike, rows: dict[str, int | None], extra: dict | None = None) -> Manifest:
    """Hash the named files (paths relative to `folder`) and write `folder/manifest.json` atomically."""
    base = UPath(folder)
    entries = []
    for rel in sorted(rows):
        p = base / rel
        entries.append(FileEntry(path=rel, rows=rows[rel], bytes=p.stat().st_size, sha256=sha256_file(p)))
    manifest = Manifest(files=entries, extra=dict(extra or {}))
    write_text_atomic(base / "manifest.json", manifest.to_json())
    return manifest


@dataclass(frozen=True)
class Lake:
    """The storage root of one profile and the folders of its layout."""

    root: UPath

    @classmethod
    def at(cls, root: str | os.PathLike) -> "Lake":
        p = UPath(root)
        if _is_local(p) and not Path(p.path).is_absolute():
            p = UPath(REPO_ROOT / p.path)
        return cls(p)

    def path(self, *parts: str) -> UPath:
        out = self.root
        for part in parts:
            out = safe_join(out, part)
        return out

    def toy_world(self, *parts: str) -> UPath:
        return self.path("toy_world", *parts)

    def raw(self, source: str, *parts: str) -> UPath:
        return self.path("raw", source, *parts)

    def model(self, name: str, *parts: str) -> UPath:
        return self.path("models", name, *parts)

    def translated(self, dataset: str, lang: str) -> UPath:
        return self.path("translated", dataset, lang)

    def expand(self, template: str) -> str:
        """Resolve `{lake}` in a profile's source path (the toy profile points into its own lake)."""
        return template.replace("{lake}", str(self.root))
