"""WIT (Wikipedia-based Image Text) rows: TSV (.tsv or .tsv.gz) or Parquet, one caption per image and page.

Streamed: TSV line by line, Parquet a batch at a time (`pipeline.raw.tables`). WIT names languages
with Wikipedia codes ('zh', 'hi', ...); we map them to FLORES codes. Quarantined with a reason: a line
with a bad byte or the wrong number of fields, a field of the wrong type (Parquet), an image URL that
is not http(s), no caption, a caption over `raw_limits.max_caption_chars` or another cell over
`raw_limits.max_field_chars`, an unknown language code, and a language outside the profile ('language
not in profile': kept out on purpose, but counted, not silently).
"""
from __future__ import annotations

from typing import Any

from upath import UPath

from pipeline.config import RawLimits
from pipeline.languages import flores_from_iso
from pipeline.raw.accounting import SourceError, Stream, quarantine
from pipeline.raw.files import expand
from pipeline.raw.tables import iter_delimited, iter_parquet
from pipeline.raw.validate import type_name

REQUIRED = ("language", "page_url", "image_url")
CAPTION_FIELDS = ("caption_reference_description", "caption_attribution_description")


def _problem(rec: dict[str, Any], wanted: set[str], limits: RawLimits) -> tuple[str | None, dict[str, Any]]:
    """(None, the kept row) or (the reason, the row as read)."""
    for name in (*REQUIRED, *CAPTION_FIELDS):
        value = rec.get(name)
        if value is not None and not isinstance(value, str):
            return f"bad type: {name!r} must be a string, got {type_name(value)}", rec
    # other columns are carried along as text (null -> ""), as a TSV would have them
    rec = {k: "" if v is None else v if isinstance(v, str) else str(v) for k, v in rec.items()}
    caption = next((rec[c].strip() for c in CAPTION_FIELDS if rec.get(c, "").strip()), "")
    if not rec["image_url"].startswith(("http://", "https://")):
        return "bad image_url: not an http(s) URL", rec
    if not caption:
        return "missing field: no caption_reference_description or attribution", rec
    if len(caption) > limits.max_caption_chars:
        return (f"too long: the caption has {len(caption)} characters "
                f"(limit {limits.max_caption_chars}, raw_limits.max_caption_chars)"), rec
    for name, value in rec.items():
        if name not in CAPTION_FIELDS and len(value) > limits.max_field_chars:
            return (f"too long: {name!r} has {len(value)} characters "
                    f"(limit {limits.max_field_chars}, raw_limits.max_field_chars)"), rec
    lang = flores_from_iso(rec["language"])
    if lang is None:
        return f"unknown language: WIT code {rec['language']!r} has no FLORES mapping", rec
    if lang not in wanted:
        return f"language not in profile: {lang}", rec
    return None, {**rec, "lang": lang, "caption": caption}


def read_wit(path: str, languages: tuple[str, ...], limits: RawLimits = RawLimits()) -> Stream:
    """Keep rows with an image URL and a caption in one of `languages` (+ English). No file matching
    `path` is a `SourceError` at once, before the stream is read."""
    files = expand(path)
    if not files:
        raise SourceError(f"wit: no files match {path} (check sources.wit.path in the profile)")
    return _read(files, set(languages) | {"eng_Latn"}, limits)


def _read(files: list[UPath], wanted: set[str], limits: RawLimits) -> Stream:
    for f in files:
        parquet = f.suffix == ".parquet"
        rows = iter_parquet(f, REQUIRED, "wit") if parquet else iter_delimited(f, REQUIRED, "wit", limits.max_row_bytes)
        kind = "index" if parquet else "line"
        for rowno, rec, problem, raw in rows:
            if problem is None:
                problem, rec = _problem(rec, wanted, limits)
            if problem:
                yield quarantine(f.name, rowno, problem, rec if raw is None else raw, kind)
            else:
                yield rec
