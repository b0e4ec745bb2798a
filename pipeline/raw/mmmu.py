"""MMMU in the Hugging Face layout: one Parquet file per subject and split (`<Subject>/validation-*.parquet`).

Options are the string repr of a Python list (parsed with ast.literal_eval, never eval); answers are a
letter for multiple-choice questions; images are structs with JPEG/PNG bytes. A question whose
images do not decode, whose options do not parse, or whose answer is not one of the option letters
is quarantined.
"""
from __future__ import annotations

import ast
import io
import re

import pyarrow.parquet as pq
from PIL import Image

from pipeline.raw.accounting import ReadResult, SourceError
from pipeline.raw.files import expand

FIELDS = ("id", "question", "options", "answer", "question_type")
IMAGE_FIELDS = tuple(f"image_{i}" for i in range(1, 8))
_IMAGE_TAG = re.compile(r"<image (\d)>")


def parse_options(options: str) -> list[str]:
    value = ast.literal_eval(options)
    if not isinstance(value, list) or not all(isinstance(o, str) for o in value):
        raise ValueError("options must be a list of strings")
    return value


def subject_of(row_id: str) -> str:
    """'validation_Art_Theory_12' -> 'Art_Theory'."""
    parts = row_id.split("_")
    return "_".join(parts[1:-1]) if len(parts) >= 3 else ""


def _problem(rec: dict) -> str | None:
    missing = [f for f in FIELDS if not rec.get(f)]
    if missing:
        return f"missing field: {missing}"
    try:
        options = parse_options(rec["options"])
    except (ValueError, SyntaxError) as e:
        return f"bad options: not the repr of a list of strings ({e.__class__.__name__})"
    if rec["question_type"] == "multiple-choice":
        letters = [chr(ord("A") + i) for i in range(len(options))]
        if rec["answer"] not in letters:
            return f"bad answer: {rec['answer']!r} is not one of {letters}"
    for n in sorted(set(_IMAGE_TAG.findall(rec["question"]))):
        img = rec.get(f"image_{n}")
        if not img or not img.get("bytes"):
            return f"image missing: the question names <image {n}> but image_{n} is empty"
        try:
            with Image.open(io.BytesIO(img["bytes"])) as im:
                im.verify()
        except Exception as e:  # PIL raises many types for broken files
            return f"image unreadable: image_{n} ({e.__class__.__name__})"
    return None


def read_mmmu(path: str) -> ReadResult:
    files = expand(path)
    if not files:
        raise SourceError(f"mmmu: no files match {path} (check sources.mmmu.path)")
    result = ReadResult("mmmu")
    for f in files:
        with f.open("rb") as fh:
            table = pq.read_table(fh)
        for i, rec in enumerate(table.to_pylist()):
            problem = _problem(rec)
            if problem:
                rec = {k: v for k, v in rec.items() if k not in IMAGE_FIELDS}
                result.reject(f"{f.parent.name}/{f.name}", i, problem, rec)
            else:
                result.keep({**rec, "subject": subject_of(rec["id"])})
    return result
