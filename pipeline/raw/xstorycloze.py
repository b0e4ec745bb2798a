"""XStoryCloze: per-language TSV/CSV files with four story sentences and two candidate endings.

The language comes from the file name (`xstorycloze.<FLORES code>.<split>.tsv`, or the HF
dataset's `spring2016.val.<iso>.tsv...` naming).
"""
from __future__ import annotations

import re

import pandas as pd

from pipeline.raw.accounting import ReadResult, SourceError
from pipeline.raw.files import expand
from pipeline.languages import flores_from_iso

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


def read_xstorycloze(path: str) -> ReadResult:
    files = expand(path)
    if not files:
        raise SourceError(f"xstorycloze: no files match {path} (check sources.xstorycloze.path)")
    result = ReadResult("xstorycloze")
    for f in files:
        lang = language_of(f.name)
        if lang is None:
            raise SourceError(f"xstorycloze: cannot tell the language of {f.name}; name it xstorycloze.<FLORES code>.<split>.tsv")
        with f.open("rb") as fh:
            df = pd.read_csv(fh, sep="\t" if ".tsv" in f.name else ",", dtype=str, keep_default_na=False)
        missing = [c for c in COLUMNS if c not in df.columns]
        if missing:
            raise SourceError(f"xstorycloze: {f.name} lacks column(s) {missing}")
        for i, rec in enumerate(df[list(COLUMNS)].to_dict("records")):
            empty = [c for c in COLUMNS if not rec[c].strip()]
            if empty:
                result.reject(f.name, i + 2, f"missing field: {empty}", rec)
            elif rec["answer_right_ending"].strip() not in ("1", "2"):
                result.reject(f.name, i + 2, f"bad answer: answer_right_ending must be 1 or 2, got {rec['answer_right_ending']!r}", rec)
            else:
                result.keep({**rec, "answer_right_ending": int(rec["answer_right_ending"]), "lang": lang})
    return result
