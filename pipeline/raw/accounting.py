"""Row accounting shared by every corpus reader: each input row is kept or quarantined with a reason.

`ReadResult.read == len(kept) + len(quarantined)` always holds; `to_stats()` turns it into the step's
`StepStats`.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pipeline.stats import StepStats


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

    def to_stats(self, step: str) -> StepStats:
        """The step's stats: every input row kept or quarantined, reasons grouped by their first clause
        (so "missing field 'id'" counts apart from image errors)."""
        if self.read != len(self.kept) + len(self.quarantined):
            raise AssertionError(f"{self.source}: row accounting is broken ({self.read} read, "
                                 f"{len(self.kept)} kept, {len(self.quarantined)} quarantined)")
        return StepStats(step, rows_in=self.read, rows_kept=len(self.kept), rows_quarantined=len(self.quarantined),
                         reasons=Counter(q.reason.split(":")[0] for q in self.quarantined), items=self.read)
