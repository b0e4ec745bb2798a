"""The one stats type every step returns, and the result an entry function hands back.

Like datatrove's per-step stats: a step counts what came in, what it kept, quarantined (bad input) or
dropped (filtered on purpose, with a reason), how many items reached a model and how many were served
from a cache, and how long it took. Step-specific numbers go in `counters`, a few example rows in
`sample`. `assets/metadata.py` renders it for the Dagster UI, the CLIs print `to_dict()`, and
manifests record it, so one object describes a run everywhere.
"""
from __future__ import annotations

import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator


@dataclass
class StepStats:
    step: str
    rows_in: int = 0
    rows_kept: int = 0
    rows_quarantined: int = 0  # bad input, with a reason per row
    rows_dropped: int = 0  # good input that a filter left out on purpose, with a reason per row
    reasons: Counter = field(default_factory=Counter)  # reason -> rows (quarantined and dropped)
    model_calls: int = 0  # items that reached a model
    cache_hits: int = 0  # items served from a cache (translation memory, score cache)
    items: int = 0  # what throughput is measured in ...
    unit: str = "rows"  # ... and its name
    seconds: float = 0.0
    counters: dict[str, float] = field(default_factory=dict)  # step-specific numbers
    sample: list[dict[str, Any]] = field(default_factory=list)  # a few rows for the UI

    @property
    def accounted(self) -> bool:
        """Every input row is kept, quarantined or dropped: nothing is lost silently."""
        return self.rows_in == self.rows_kept + self.rows_quarantined + self.rows_dropped

    @property
    def items_per_s(self) -> float:
        return self.items / self.seconds if self.seconds and self.items else 0.0

    def add(self, **counts: float) -> None:
        """Add to step-specific counters."""
        for k, v in counts.items():
            self.counters[k] = self.counters.get(k, 0) + v

    @contextmanager
    def timed(self) -> Iterator["StepStats"]:
        started = time.perf_counter()
        try:
            yield self
        finally:
            self.seconds += time.perf_counter() - started

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able numbers (no sample): for manifests, CLIs and metadata."""
        out: dict[str, Any] = {
            "rows_in": self.rows_in, "rows_kept": self.rows_kept, "rows_quarantined": self.rows_quarantined,
            "rows_dropped": self.rows_dropped, "reasons": dict(self.reasons),
            "model_calls": self.model_calls, "cache_hits": self.cache_hits,
            "seconds": round(self.seconds, 3), f"{self.unit}_per_s": round(self.items_per_s, 2),
        }
        out.update({k: (round(v, 3) if isinstance(v, float) else v) for k, v in self.counters.items()})
        return out


@dataclass
class StepResult:
    """What an entry function returns: where it wrote, the manifest of what it wrote, and its stats."""

    path: str
    manifest: Any  # pipeline.lake.Manifest (Any keeps this module free of imports)
    stats: StepStats

    @property
    def data_version(self) -> str:
        return self.manifest.digest()
