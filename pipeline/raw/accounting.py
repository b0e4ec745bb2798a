"""Row accounting shared by every corpus reader: each input row is kept or quarantined with a reason.

The reader interface: a reader is a generator that yields, in input order, one item per input row:
either the kept row (a dict) or a `Quarantined` record saying where the row is and why it was left
out. Nothing accumulates in a reader (a conversation reader keeps the ids it has seen, ids only), so a
source of any size is read in bounded memory; `pipeline.raw.ingest` consumes the stream once, and
`collect()` turns a small stream into a `ReadResult` for tests and small data.

A reader raises `SourceError` only for what stops a whole file (missing file, missing columns, a file
that cannot be decompressed); a bad row never does.

Where a quarantined row is (`Quarantined.row`, with `row_kind` saying what the number means):
- "line": the 1-based line number in the file, as an editor shows it (JSONL, TSV including its header
  line, Flores); a TSV row that spans several lines (a quoted field with newlines) is named by its
  first line;
- "index": the 0-based position of the element in a JSON list or of the row in a Parquet file;
- "key": an identifier the source gives the row (img2dataset's sample key for downloaded URL lists).
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Literal, Union

from pipeline.stats import StepStats

RowKind = Literal["line", "index", "key"]


class SourceError(ValueError):
    """A source that cannot be read at all (missing file or columns, a file that does not decompress)."""


@dataclass(frozen=True)
class Quarantined:
    file: str
    row: int | str  # see the module docstring: a line number, a list/Parquet index, or a key
    reason: str  # "<kind>: <details>"; the kind (before the first colon) is what the stats count
    raw: str  # the offending input, cut to 500 characters, always encodable as UTF-8
    row_kind: RowKind = "line"

    @property
    def kind(self) -> str:
        return self.reason.split(":")[0]

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "row": self.row, "row_kind": self.row_kind, "reason": self.reason,
                "raw": self.raw}


def printable(text: str) -> str:
    """`text` made writable as UTF-8: undecodable bytes (kept as surrogate escapes) become `\\xff`, lone
    surrogates from JSON escapes become `\\ud800`."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def short(value: Any, limit: int = 500) -> str:
    if isinstance(value, bytes):
        text = value[: limit * 4].decode("utf-8", "backslashreplace")
    elif isinstance(value, str):
        text = value[: limit * 2]
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=repr)
        except (ValueError, RecursionError):  # circular or absurdly deep: the repr is enough to find it
            text = repr(value)[: limit * 2]
    return printable(text)[:limit]


def quarantine(file: Any, row: int | str, reason: str, raw: Any, row_kind: RowKind = "line") -> Quarantined:
    return Quarantined(printable(str(file)), row, printable(reason), short(raw), row_kind)


Item = Union[dict[str, Any], Quarantined]
Stream = Iterator[Item]


class Tally:
    """Counts of a stream as it goes by: rows read, kept, quarantined, and reasons by kind."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.read = self.kept = self.quarantined = 0
        self.reasons: Counter = Counter()

    def add(self, item: Item) -> None:
        self.read += 1
        if isinstance(item, Quarantined):
            self.quarantined += 1
            self.reasons[item.kind] += 1
        else:
            self.kept += 1

    def to_stats(self, step: str) -> StepStats:
        """The step's stats: every input row kept or quarantined, reasons grouped by their kind (the first
        clause, so "missing field: 'id'" counts apart from image errors)."""
        if self.read != self.kept + self.quarantined:
            raise AssertionError(f"{self.source}: row accounting is broken ({self.read} read, "
                                 f"{self.kept} kept, {self.quarantined} quarantined)")
        return StepStats(step, rows_in=self.read, rows_kept=self.kept, rows_quarantined=self.quarantined,
                         reasons=Counter(self.reasons), items=self.read)


@dataclass
class ReadResult:
    """A whole stream in memory: for tests, small data and the URL-list downloader."""

    source: str
    kept: list[dict[str, Any]] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    read: int = 0

    def keep(self, row: dict[str, Any]) -> None:
        self.read += 1
        self.kept.append(row)

    def reject(self, file: str, row: int | str, reason: str, raw: Any, row_kind: RowKind = "line") -> None:
        self.read += 1
        self.quarantined.append(quarantine(file, row, reason, raw, row_kind))

    def to_stats(self, step: str) -> StepStats:
        tally = Tally(self.source)
        for item in (*self.kept, *self.quarantined):
            tally.add(item)
        tally.read = self.read  # a mismatch with kept + quarantined is reported by Tally.to_stats
        return tally.to_stats(step)


def collect(stream: Iterable[Item], source: str = "") -> ReadResult:
    """Read a whole stream into a `ReadResult` (kept rows, quarantined records, rows read)."""
    result = ReadResult(source)
    for item in stream:
        result.read += 1
        (result.quarantined if isinstance(item, Quarantined) else result.kept).append(item)
    return result
