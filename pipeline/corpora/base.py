"""Row accounting shared by every corpus reader: each input row is kept or quarantined with a reason.

`ReadResult.read == len(kept) + len(quarantined)` always holds; `publish()` writes the kept rows,
the quarantine records and a manifest under `raw/<source>/`, atomically, and returns the stats that
the raw assets show as metadata.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from pipeline.lake import Manifest, atomic_open, build_manifest, write_jsonl_atomic


class SourceError(ValueError):
    """A source that cannot be read at all (missing file, not JSON at the top level)."""


@dataclass(frozen=True)
class Quarantined:
    file: str
    row: int | str  # line number, list index or row id: what a person needs to find it
    reason: str
    raw: str  # the offending input, cut to 500 characters

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "row": self.row, "reason": self.reason, "raw": self.raw}


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text[:500]


@dataclass
class ReadResult:
    source: str
    kept: list[dict[str, Any]] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    read: int = 0

    def keep(self, row: dict[str, Any]) -> None:
        self.read += 1
        self.kept.append(row)

    def reject(self, file: str, row: int | str, reason: str, raw: Any) -> None:
        self.read += 1
        self.quarantined.append(Quarantined(str(file), row, reason, _short(raw)))

    def reasons(self) -> dict[str, int]:
        # the reason's first clause, so counts group "missing field 'id'" separately from image errors
        return dict(Counter(q.reason.split(":")[0] for q in self.quarantined))

    def stats(self) -> dict[str, Any]:
        assert self.read == len(self.kept) + len(self.quarantined), "row accounting is broken"
        return {
            "rows_read": self.read,
            "rows_kept": len(self.kept),
            "rows_quarantined": len(self.quarantined),
            "quarantine_reasons": self.reasons(),
        }


def publish(out_dir: UPath, result: ReadResult, fmt: str, extra: dict[str, Any] | None = None) -> Manifest:
    """Write kept rows (`rows.jsonl` or `rows.parquet`), `quarantine.jsonl` and `manifest.json`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        data_name = "rows.jsonl"
        write_jsonl_atomic(out_dir / data_name, result.kept)
    elif fmt == "parquet":
        data_name = "rows.parquet"
        table = pa.Table.from_pylist(result.kept) if result.kept else pa.table({})
        with atomic_open(out_dir / data_name, "wb") as f:
            pq.write_table(table, f)
    else:
        raise ValueError(f"unknown output format {fmt!r}; use 'jsonl' or 'parquet'")
    write_jsonl_atomic(out_dir / "quarantine.jsonl", (q.to_dict() for q in result.quarantined))
    return build_manifest(
        out_dir,
        {data_name: len(result.kept), "quarantine.jsonl": len(result.quarantined)},
        extra={**result.stats(), **(extra or {})},
    )


def read_jsonl(path: UPath) -> list[dict[str, Any]]:
    with UPath(path).open("r", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
