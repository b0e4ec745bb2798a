"""Flores-200: one file per language (`eng_Latn.devtest`), line i of every file is the same sentence.

A row is kept when every requested language has a non-empty line; a row with an empty line in any
language is quarantined for all of them (a partial parallel row is useless as translation data).
"""
from __future__ import annotations

from upath import UPath

from pipeline.raw.accounting import ReadResult, SourceError


def read_flores(folder: str, split: str, languages: tuple[str, ...]) -> ReadResult:
    langs = ("eng_Latn",) + tuple(lang for lang in languages if lang != "eng_Latn")
    base = UPath(folder)
    lines: dict[str, list[str]] = {}
    for lang in langs:
        f = base / f"{lang}.{split}"
        if not f.exists():
            raise SourceError(f"flores: missing file {f} (one `{{lang}}.{split}` file per language is needed)")
        lines[lang] = f.read_text(encoding="utf-8").split("\n")
        if lines[lang] and lines[lang][-1] == "":
            lines[lang].pop()
    counts = {lang: len(v) for lang, v in lines.items()}
    if len(set(counts.values())) != 1:
        raise SourceError(f"flores: files are not line-aligned, line counts differ: {counts}")
    result = ReadResult("flores")
    for i in range(counts["eng_Latn"]):
        row = {"id": i, **{lang: lines[lang][i].strip() for lang in langs}}
        empty = [lang for lang in langs if not row[lang]]
        if empty:
            result.reject(f"*.{split}", i + 1, f"empty sentence: line {i + 1} is empty in {empty}", row)
        else:
            result.keep(row)
    return result
