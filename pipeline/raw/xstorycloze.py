"""XStoryCloze: per-language TSV/CSV files with four story sentences and two candidate endings.

The language comes from the file name (`xstorycloze.<FLORES code>.<split>.tsv`, or the HF
dataset's `spring2016.val.<iso>.tsv...` naming). Streamed line by line (`pipeline.raw.tables`);
a quarantined story is named by its 1-based line in the file (the header is line 1).
"""
from __future__ import annotations

import re

from upath import UPath

from pipeline.config import RawLimits
from pipeline.languages import flores_from_iso
from pipeline.raw.accounting import SourceError, Stream, quarantine
from pipeline.raw.files import expand
from pipeline.raw.tables import iter_delimited

COLUMNS = ("story_id", "input_sentence_1", "input_sentence_2", "input_sentence_3", "input_sentence_4",
           "sentence_quiz1", "sentence_quiz2", "answer_right_ending")
_FLORES_RE = re.compile(r"([a-z]{3}_[A-Z][a-z]{3})")
_ISO_RE = re.compile(r"\.([a-z]{2}(?:-[A-Z]{2})?)\.")


def language_of(filename: str) -> str | None:
    m = _FLORES_RE.search(filename)
    if m:
        return m.group(1)
    m = _ISO_RE.search(filename)
    return flores_from_iso(m.group(1)) if m else None


def read_xstorycloze(path: str, limits: RawLimits = RawLimits()) -> Stream:
    """Stream the stories of every file matching `path`. No matching file, or a file whose language
    cannot be told from its name, is a `SourceError` at once, before the stream is read."""
    files = expand(path)
    if not files:
        raise SourceError(f"xstorycloze: no files match {path} (check sources.xstorycloze.path)")
    langs = {}
    for f in files:
        langs[f] = language_of(f.name)
        if langs[f] is None:
            raise SourceError(f"xstorycloze: cannot tell the language of {f.name}; "
                              f"name it xstorycloze.<FLORES code>.<split>.tsv")
    return _read(files, langs, limits)


def _problem(rec: dict[str, str], limits: RawLimits) -> str | None:
    empty = [c for c in COLUMNS if not rec[c].strip()]
    if empty:
        return f"missing field: {empty}"
    if rec["answer_right_ending"].strip() not in ("1", "2"):
        return f"bad answer: answer_right_ending must be 1 or 2, got {rec['answer_right_ending']!r}"[:300]
    for c in COLUMNS:
        if len(rec[c]) > limits.max_field_chars:
            return (f"too long: {c!r} has {len(rec[c])} characters "
                    f"(limit {limits.max_field_chars}, raw_limits.max_field_chars)")
    return None


def _read(files: list[UPath], langs: dict[UPath, str], limits: RawLimits) -> Stream:
    for f in files:
        sep = "\t" if ".tsv" in f.name else ","
        for line, rec, problem, raw in iter_delimited(f, COLUMNS, "xstorycloze", limits.max_row_bytes, sep):
            if problem is None:
                rec = {c: rec[c] for c in COLUMNS}
                problem = _problem(rec, limits)
            if problem:
                yield quarantine(f.name, line, problem, raw, "line")
            else:
                yield {**rec, "answer_right_ending": int(rec["answer_right_ending"]), "lang": langs[f]}
