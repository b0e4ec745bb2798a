"""MMMU in the Hugging Face layout: one Parquet file per subject and split (`<Subject>/validation-*.parquet`).

Options are the string repr of a Python list (parsed with ast.literal_eval, never eval); answers are a
letter for multiple-choice questions; images are structs with JPEG/PNG bytes. A question whose
images do not decode, whose options do not parse, or whose answer is not one of the option letters
is quarantined, named by its 0-based row index in the file; so is a field of the wrong type or a text
over `raw_limits.max_field_chars`. Files are read a record batch at a time.
"""
from __future__ import annotations

import ast
import io
import re

from PIL import Image
from upath import UPath

from pipeline.config import RawLimits
from pipeline.raw.accounting import SourceError, Stream, quarantine
from pipeline.raw.files import expand
from pipeline.raw.tables import iter_parquet
from pipeline.raw.validate import string_field, type_name

FIELDS = ("id", "question", "options", "answer", "question_type")
IMAGE_FIELDS = tuple(f"image_{i}" for i in range(1, 8))
_IMAGE_TAG = re.compile(r"<image (\d)>")
BATCH_ROWS = 64  # rows hold their images: a small batch keeps memory bounded


def parse_options(options: str) -> list[str]:
    value = ast.literal_eval(options)
    if not isinstance(value, list) or not all(isinstance(o, str) for o in value):
        raise ValueError("options must be a list of strings")
    return value


def subject_of(row_id: str) -> str:
    """'validation_Art_Theory_12' -> 'Art_Theory'."""
    parts = row_id.split("_")
    return "_".join(parts[1:-1]) if len(parts) >= 3 else ""


def _problem(rec: dict, limits: RawLimits) -> str | None:
    for f in FIELDS:
        if problem := string_field(rec, f, limit=limits.max_field_chars):
            return problem
    try:
        options = parse_options(rec["options"])
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as e:
        return f"bad options: not the repr of a list of strings ({e.__class__.__name__})"
    if rec["question_type"] == "multiple-choice":
        letters = [chr(ord("A") + i) for i in range(len(options))]
        if rec["answer"] not in letters:
            return f"bad answer: {rec['answer']!r} is not one of {letters}"[:300]
    for n in sorted(set(_IMAGE_TAG.findall(rec["question"]))):
        img = rec.get(f"image_{n}")
        if img is not None and not isinstance(img, dict):
            return f"bad type: image_{n} must be a struct with 'bytes', got {type_name(img)}"
        if not img or not img.get("bytes"):
            return f"image missing: the question names <image {n}> but image_{n} is empty"
        if not isinstance(img["bytes"], bytes):
            return f"bad type: image_{n}.bytes must be binary, got {type_name(img['bytes'])}"
        try:
            with Image.open(io.BytesIO(img["bytes"])) as im:
                im.verify()
        except Exception as e:  # PIL raises many types for broken files
            return f"image unreadable: image_{n} ({e.__class__.__name__})"
    return None


def read_mmmu(path: str, limits: RawLimits = RawLimits()) -> Stream:
    """Stream the questions of every Parquet file matching `path`. No matching file is a `SourceError`
    at once, before the stream is read."""
    files = expand(path)
    if not files:
        raise SourceError(f"mmmu: no files match {path} (check sources.mmmu.path)")
    return _read(files, limits)


def _read(files: list[UPath], limits: RawLimits) -> Stream:
    for f in files:
        name = f"{f.parent.name}/{f.name}"
        for i, rec, problem, _ in iter_parquet(f, FIELDS, "mmmu", batch_rows=BATCH_ROWS):
            if problem is None:
                problem = _problem(rec, limits)
            if problem:
                rec = {k: v for k, v in rec.items() if k not in IMAGE_FIELDS} if rec else None
                yield quarantine(name, i, problem, rec, "index")
            else:
                yield {**rec, "subject": subject_of(rec["id"])}
