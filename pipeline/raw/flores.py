"""Flores-200: one file per language (`eng_Latn.devtest`), line i of every file is the same sentence.

A row is kept when every requested language has a non-empty line; a row with an empty, undecodable
or over-long line in any language (`raw_limits.max_field_chars`) is quarantined for all of them (a
partial parallel row is useless as translation data), named by its 1-based line number. Files whose
line counts differ stop the source before any row is read: the files are counted first, then read
side by side, a line at a time.
"""
from __future__ import annotations

from typing import Iterator

from upath import UPath

from pipeline.config import RawLimits
from pipeline.raw.accounting import SourceError, Stream, quarantine
from pipeline.raw.files import decode, iter_lines, open_binary, read_chunks


def _count_lines(f: UPath) -> int:
    with open_binary(f) as fh:
        lines, last = 0, b""
        for chunk in read_chunks(fh, f.name):
            lines += chunk.count(b"\n")
            last = chunk
    return lines + (1 if last and not last.endswith(b"\n") else 0)


def read_flores(folder: str, split: str, languages: tuple[str, ...], limits: RawLimits = RawLimits()) -> Stream:
    """Stream the parallel rows. A missing or misaligned file is a `SourceError` at once, before the
    stream is read."""
    langs = ("eng_Latn",) + tuple(lang for lang in languages if lang != "eng_Latn")
    base = UPath(folder)
    files = {lang: base / f"{lang}.{split}" for lang in langs}
    for f in files.values():
        if not f.exists():
            raise SourceError(f"flores: missing file {f} (one `{{lang}}.{split}` file per language is needed)")
    counts = {lang: _count_lines(f) for lang, f in files.items()}
    if len(set(counts.values())) != 1:
        raise SourceError(f"flores: files are not line-aligned, line counts differ: {counts}")
    return _read(files, split, limits)


def _lines(f: UPath, limits: RawLimits) -> Iterator[tuple[str | None, str | None]]:
    """(sentence, None) or (None, the reason) for each line of one file."""
    with open_binary(f) as fh:
        for lineno, line in iter_lines(fh, f.name, limits.max_row_bytes):
            if line is None:
                yield None, f"too long: {f.name} line {lineno} has more than {limits.max_row_bytes} bytes"
                continue
            if lineno == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            text, problem = decode(line)
            if problem:
                yield None, f"bad encoding: {f.name} line {lineno}: {problem.split(': ', 1)[1]}"
            elif len(text.strip()) > limits.max_field_chars:
                yield None, (f"too long: {f.name} line {lineno} has {len(text.strip())} characters "
                             f"(limit {limits.max_field_chars}, raw_limits.max_field_chars)")
            else:
                yield text.strip(), None


def _read(files: dict[str, UPath], split: str, limits: RawLimits) -> Stream:
    langs = list(files)
    readers = [_lines(files[lang], limits) for lang in langs]
    for i, cells in enumerate(zip(*readers)):
        row = {"id": i, **{lang: text for lang, (text, _) in zip(langs, cells)}}
        problems = [why for _, why in cells if why]
        empty = [lang for lang, (text, why) in zip(langs, cells) if not why and not text]
        if problems:
            yield quarantine(f"*.{split}", i + 1, problems[0], row, "line")
        elif empty:
            yield quarantine(f"*.{split}", i + 1, f"empty sentence: line {i + 1} is empty in {empty}", row, "line")
        else:
            yield row
