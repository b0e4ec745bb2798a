"""LLaVA-format conversation corpora: LLaVA-Instruct (JSON list), PALO (JSON list), Cambrian (JSONL).

A row is `{"id", "image"?, "conversations": [{"from": "human"|"gpt", "value": str}, ...]}`.
Text-only rows have no image, or one of '', 'None', 'none', 'nan' (Cambrian's spellings); they are
kept without the `image` key. Image paths are relative to the source's image root and may not
leave it. Rows are kept in their original format, so later steps write the same format back.
"""
from __future__ import annotations

import json
from typing import Any

from PIL import Image, UnidentifiedImageError
from upath import UPath

from pipeline.raw.accounting import ReadResult, SourceError
from pipeline.lake import PathEscapeError, safe_join

NO_IMAGE = {"", "None", "none", "nan", "NaN", "null"}
ROLES = {"human", "gpt"}


def has_image(row: dict[str, Any]) -> bool:
    image = row.get("image")
    return isinstance(image, str) and image not in NO_IMAGE


def _iter_records(path: UPath):
    """Yield (row number, parsed record or the JSONDecodeError, raw text)."""
    text = path.read_text(encoding="utf-8")
    head = text.lstrip()[:1]
    if head == "[":
        try:
            records = json.loads(text)
        except json.JSONDecodeError as e:
            raise SourceError(
                f"{path}: not valid JSON at line {e.lineno} column {e.colno} ({e.msg}); a JSON-list corpus "
                f"must parse as a whole; a per-line corpus must be JSONL"
            ) from None
        for i, rec in enumerate(records):
            yield i, rec, rec
        return
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line), line
        except json.JSONDecodeError as e:
            yield lineno, e, line


def _problem(rec: Any) -> str | None:
    if not isinstance(rec, dict):
        return f"not an object: got {type(rec).__name__}"
    if not isinstance(rec.get("id"), (str, int)) or rec.get("id") == "":
        return "missing field: 'id'"
    conv = rec.get("conversations")
    if not isinstance(conv, list) or not conv:
        return "missing field: 'conversations' must be a non-empty list"
    for k, turn in enumerate(conv):
        if not isinstance(turn, dict) or turn.get("from") not in ROLES or not isinstance(turn.get("value"), str):
            return f"bad turn: conversations[{k}] needs 'from' in {sorted(ROLES)} and a string 'value'"
    if not any(t["from"] == "gpt" for t in conv) or not any(t["from"] == "human" for t in conv):
        return "bad turn: a conversation needs at least one human and one gpt turn"
    return None


def _image_problem(image: str, image_root: str | None, verify: bool) -> str | None:
    if image_root is None:
        return "image: the row names an image but the source has no image_root configured"
    try:
        path = safe_join(image_root, image)
    except PathEscapeError as e:
        return f"image path escapes the image root: {e}"
    if not path.exists():
        return f"image missing: {path}"
    if verify:
        try:
            with path.open("rb") as f, Image.open(f) as im:
                im.verify()
        except (UnidentifiedImageError, OSError, SyntaxError) as e:
            return f"image unreadable: {path} ({e.__class__.__name__}: {e})"
    return None


def read_conversations(
    path: str, source: str, image_root: str | None = None, verify_images: bool = True
) -> ReadResult:
    """Read a LLaVA-format corpus, quarantining malformed rows and rows whose image is unusable."""
    p = UPath(path)
    if not p.exists():
        raise SourceError(f"{source}: corpus file not found: {p} (check sources.{source}.path in the profile)")
    result = ReadResult(source)
    seen_ids: set[str] = set()
    for rowno, rec, raw in _iter_records(p):
        if isinstance(rec, json.JSONDecodeError):
            result.reject(p.name, rowno, f"malformed JSON: {rec.msg} at column {rec.colno}", raw)
            continue
        problem = _problem(rec)
        if problem is None and str(rec["id"]) in seen_ids:
            problem = f"duplicate id: {rec['id']!r} already read"
        if problem is None and has_image(rec):
            problem = _image_problem(rec["image"], image_root, verify_images)
        if problem:
            result.reject(p.name, rowno, problem, raw)
            continue
        seen_ids.add(str(rec["id"]))
        if "image" in rec and not has_image(rec):
            rec = {k: v for k, v in rec.items() if k != "image"}
        result.keep(rec)
    return result
