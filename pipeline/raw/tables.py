"""Tabular input, streamed: delimited text (TSV/CSV) row by row, Parquet a record batch at a time.

Delimited text is split into lines here (`pipeline.raw.files`), each line decoded on its own, and the
lines are parsed with the csv module in pandas' default dialect (fields in double quotes may hold the
delimiter, quotes and newlines). So a line with a bad byte, a line longer than the row limit, or a row
with too many or too few fields is one quarantined row, named by its 1-based line number in the file
(the header is line 1); the other rows are read. A file without the required columns, or whose header
line cannot be read, stops the source with a `SourceError`.

Parquet rows are named by their 0-based index in the file. A file that is not Parquet, lacks required
columns or fails to decode a page stops the source; a value that is not valid UTF-8 costs its row.

Each item is (row number, the row as a dict or None, None or the reason it was not read, raw input).
"""
from __future__ import annotations

import csv
from typing import Any, Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from pipeline.raw.accounting import SourceError
from pipeline.raw.files import decode, iter_lines, open_binary

TableItem = tuple[int, "dict[str, Any] | None", "str | None", Any]


class _Lines:
    """Feeds decoded lines to csv.reader and remembers where the current record started. A line that
    cannot be fed (too long, not UTF-8) is set aside and replaced by an empty line, which csv reads as a
    blank row (skipped): so the reader's next row comes back at once and the line's quarantine record
    is written in its place, without piling up."""

    def __init__(self, lines: Iterator[tuple[int, bytes | None]], max_bytes: int) -> None:
        self.lines = lines
        self.max_bytes = max_bytes
        self.rejected: list[tuple[int, str, Any]] = []
        self.start: int | None = None  # first line of the record being read
        self.last = 0  # last line fed

    def __iter__(self) -> Iterator[str]:
        for lineno, line in self.lines:
            if line is None:
                self.rejected.append((lineno, f"too long: line {lineno} has more than {self.max_bytes} bytes "
                                              f"(limit raw_limits.max_row_bytes)", ""))
                yield "\n"
                continue
            text, problem = decode(line)
            if problem:
                self.rejected.append((lineno, problem, line[:2000]))
                yield "\n"
                continue
            if self.start is None:
                self.start = lineno
            self.last = lineno
            yield text + "\n"

    def take_start(self) -> tuple[int, int]:
        """(first, last) line of the record just read; the next record starts afresh."""
        span = (self.start if self.start is not None else self.last, self.last)
        self.start = None
        return span


def iter_delimited(path: UPath, required: Sequence[str], source: str, max_bytes: int,
                   delimiter: str = "\t") -> Iterator[TableItem]:
    """Rows of a TSV/CSV file (gzipped when its name ends in .gz) as dicts of strings."""
    with open_binary(path) as f:
        feed = _Lines(iter_lines(f, path.name, max_bytes), max_bytes)
        reader = csv.reader(feed, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            header = None
        except csv.Error as e:
            raise SourceError(f"{source}: cannot read the header line of {path.name} ({e})") from None
        if feed.rejected and feed.rejected[0][0] == 1 or header is None:
            why = feed.rejected[0][1] if feed.rejected else "the file is empty"
            raise SourceError(f"{source}: cannot read the header line of {path.name}: {why}")
        feed.take_start()
        if header and header[0].startswith("\ufeff"):
            header[0] = header[0][1:]
        missing = [c for c in required if c not in header]
        if missing:
            raise SourceError(f"{source}: {path.name} lacks column(s) {missing}; it has {header}")
        while True:
            try:
                row = next(reader)
                problem = None
            except StopIteration:
                row, problem = None, "end"
            except csv.Error as e:
                row, problem = None, f"bad row: {_csv_error(e)}"
            yield from _flush(feed)
            if problem == "end":
                return
            first, last = feed.take_start()
            if problem:
                yield first, None, problem, ""
            elif not row:  # a blank line: not a row
                continue
            elif len(row) != len(header):
                span = f" (lines {first}-{last}: an unclosed quote?)" if last > first else ""
                yield first, None, f"bad row: expected {len(header)} fields, got {len(row)}{span}", \
                    delimiter.join(row)
            else:
                yield first, dict(zip(header, row)), None, delimiter.join(row)


def _csv_error(e: csv.Error) -> str:
    if "new-line character" in str(e):  # the csv module's message suggests a fix that does not apply here
        return "a carriage return (\\r) in a field that is not quoted"
    return str(e)


def _flush(feed: _Lines) -> Iterator[TableItem]:
    for lineno, problem, raw in feed.rejected:
        yield lineno, None, problem, raw
    feed.rejected.clear()


def iter_parquet(path: UPath, required: Sequence[str], source: str, batch_rows: int = 1024) -> Iterator[TableItem]:
    """Rows of a Parquet file, a record batch at a time."""
    with path.open("rb") as fh:
        try:
            pf = pq.ParquetFile(fh)
        except (pa.ArrowException, OSError) as e:
            raise SourceError(f"{source}: {path.name} is not a readable Parquet file ({e})") from None
        names = pf.schema_arrow.names
        missing = [c for c in required if c not in names]
        if missing:
            raise SourceError(f"{source}: {path.name} lacks column(s) {missing}; it has {names}")
        index = 0
        batches = pf.iter_batches(batch_size=batch_rows)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except (pa.ArrowException, OSError) as e:
                raise SourceError(f"{source}: cannot read {path.name} after row {index} ({e}); the file is "
                                  f"damaged: download it again") from None
            try:
                rows = batch.to_pylist()
            except (UnicodeDecodeError, pa.ArrowException):
                rows = None
            for i in range(batch.num_rows):
                if rows is not None:
                    yield index + i, rows[i], None, None
                    continue
                try:  # one bad value: find its row
                    yield index + i, batch.slice(i, 1).to_pylist()[0], None, None
                except (UnicodeDecodeError, pa.ArrowException) as e:
                    yield index + i, None, f"bad encoding: a value is not UTF-8 ({e.__class__.__name__})", ""
            index += batch.num_rows
