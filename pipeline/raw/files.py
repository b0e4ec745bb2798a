"""Finding input files: a plain path or a glob, on any fsspec filesystem (local, hf://, s3://)."""
from __future__ import annotations

from upath import UPath


def expand(path: str) -> list[UPath]:
    """All files that `path` names (one file, or a glob), sorted, as UPaths on the same filesystem."""
    p = UPath(path)
    if not any(ch in path for ch in "*?["):
        return [p] if p.exists() else []
    local = getattr(p, "protocol", "") in ("", "file", "local")
    matches = sorted(p.fs.glob(p.path))
    return [UPath(m) if local else UPath(f"{p.protocol}://{m}") for m in matches]
