"""LLaVA-format conversation corpora: LLaVA-Instruct (JSON list), PALO (JSON list), Cambrian (JSONL).

A row is `{"id", "image"?, "conversations": [{"from": "human"|"gpt", "value": str}, ...]}`.
Text-only rows have no image, a null one, or one of '', 'None', 'none', 'nan' (Cambrian's spellings);
they are kept without the `image` key. Image paths are relative to the source's image root and may
not leave it. Rows are kept in their original format, so later steps write the same format back.

The file is streamed: a JSON list element by element (`pipeline.raw.jsonlist`: a malformed element
is quarantined and reading goes on; only an element that never closes costs the rest of the file),
JSONL line by line, each line decoded on its own. Quarantined rows are named by their 0-based
element index in a JSON list and by their 1-based line number in JSONL. Only the ids seen so far are
kept in memory, to quarantine duplicates.

Quarantined, each with its reason: bad encoding, malformed JSON, a lone surrogate ("\\ud800" is valid
JSON but not storable text), a field of the wrong type, a missing id or conversation, a turn that is
not {"from": "human"|"gpt", "value": "<non-empty string>"}, a row over the profile's `raw_limits`
(characters per turn, turns per conversation, bytes per row), a duplicate id, and an image that is
missing, unreadable or outside the image root.
"""
from __future__ import annotations

import json
from typing import Any, Iterator

from PIL import Image, UnidentifiedImageError
from upath import UPath

from pipeline.config import RawLimits
from pipeline.lake import PathEscapeError, safe_join
from pipeline.raw.accounting import RowKind, SourceError, Stream, quarantine
from pipeline.raw.files import decode, iter_lines, open_binary
from pipeline.raw.jsonlist import iter_json_list
from pipeline.raw.validate import may_hold_surrogate, text_problem, type_name

NO_IMAGE = {"", "None", "none", "nan", "NaN", "null"}
ROLES = ("gpt", "human")
_BOM = b"\xef\xbb\xbf"


def has_image(row: dict[str, Any]) -> bool:
    image = row.get("image")
    return isinstance(image, str) and image not in NO_IMAGE


def _is_json_list(p: UPath) -> bool:
    """A JSON list starts with '[' (after a BOM and whitespace); anything else is read as JSONL."""
    with open_binary(p) as f:
        while block := f.read(1 << 16):
            head = block.lstrip(b" \t\r\n")
            if head.startswith(_BOM):
                head = head[len(_BOM):].lstrip(b" \t\r\n")
            if head:
                return head.startswith(b"[")
    return False


def _records(p: UPath, limits: RawLimits) -> Iterator[tuple[int, RowKind, Any, str | None, Any]]:
    """(row number, its kind, the parsed record or None, None or the reason it did not parse, raw input)."""
    if _is_json_list(p):
        with open_binary(p) as f:
            for index, line, value, problem, raw in iter_json_list(f, p.name, limits.max_row_bytes):
                yield index, "index", value, problem, raw
        return
    with open_binary(p) as f:
        for lineno, line in iter_lines(f, p.name, limits.max_row_bytes):
            if line is None:
                yield lineno, "line", None, (f"too long: line {lineno} has more than {limits.max_row_bytes} bytes "
                                             f"(limit raw_limits.max_row_bytes)"), ""
                continue
            if lineno == 1 and line.startswith(_BOM):
                line = line[len(_BOM):]
            if not line.strip():
                continue
            text, problem = decode(line)
            if problem:
                yield lineno, "line", None, problem, line
                continue
            try:
                yield lineno, "line", json.loads(text), None, text
            except json.JSONDecodeError as e:
                yield lineno, "line", None, f"malformed JSON: {e.msg} at column {e.colno}", text
            except RecursionError:
                yield lineno, "line", None, "too deep: the row nests deeper than the JSON parser allows", text


def row_problem(rec: Any, limits: RawLimits) -> str | None:
    """Why a parsed record is not a usable LLaVA-format row, or None; checks the type of every field
    the pipeline relies on and the profile's limits."""
    if not isinstance(rec, dict):
        return f"bad type: a row must be an object, got {type_name(rec)}"
    row_id = rec.get("id")
    if row_id is None or row_id == "":
        return "missing field: 'id'"
    if isinstance(row_id, bool) or not isinstance(row_id, (str, int)):
        return f"bad type: 'id' must be a string or an integer, got {type_name(row_id)}"
    image = rec.get("image")
    if image is not None and not isinstance(image, str):
        return f"bad type: 'image' must be a string, got {type_name(image)}"
    conv = rec.get("conversations")
    if conv is None or conv == []:
        return "missing field: 'conversations' must be a non-empty list"
    if not isinstance(conv, list):
        return f"bad type: 'conversations' must be a list, got {type_name(conv)}"
    if len(conv) > limits.max_turns:
        return f"too many turns: {len(conv)} turns (limit {limits.max_turns}, raw_limits.max_turns)"
    for k, turn in enumerate(conv):
        if not isinstance(turn, dict):
            return f"bad type: conversations[{k}] must be an object, got {type_name(turn)}"
        role, value = turn.get("from"), turn.get("value")
        if role not in ROLES:
            return f"bad turn: conversations[{k}].from must be one of {list(ROLES)}, got {role!r}"[:300]
        if not isinstance(value, str):
            return f"bad type: conversations[{k}].value must be a string, got {type_name(value)}"
        if not value.strip():
            return f"empty turn: conversations[{k}] is empty"
        if len(value) > limits.max_turn_chars:
            return (f"too long: turn {k} has {len(value)} characters "
                    f"(limit {limits.max_turn_chars}, raw_limits.max_turn_chars)")
    roles = {t["from"] for t in conv}
    if roles != set(ROLES):
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
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            return f"image unreadable: {path} ({e.__class__.__name__}: {e})"
    return None


def read_conversations(path: str, source: str, image_root: str | None = None, verify_images: bool = True,
                       limits: RawLimits = RawLimits()) -> Stream:
    """Stream a LLaVA-format corpus: each row kept, or quarantined when malformed or its image is unusable.
    A missing file is a `SourceError` at once, before the stream is read."""
    p = UPath(path)
    if not p.exists():
        raise SourceError(f"{source}: corpus file not found: {p} (check sources.{source}.path in the profile)")
    return _read(p, image_root, verify_images, limits)


def _read(p: UPath, image_root: str | None, verify_images: bool, limits: RawLimits) -> Stream:
    seen_ids: set[str] = set()
    for rowno, kind, rec, problem, raw in _records(p, limits):
        if problem is None:
            problem = row_problem(rec, limits)
        if problem is None and (not isinstance(raw, str) or may_hold_surrogate(raw)):
            problem = text_problem(rec)
        if problem is None and str(rec["id"]) in seen_ids:
            problem = f"duplicate id: {rec['id']!r} already read"
        if problem is None and has_image(rec):
            problem = _image_problem(rec["image"], image_root, verify_images)
        if problem:
            yield quarantine(p.name, rowno, problem, raw, kind)
            continue
        seen_ids.add(str(rec["id"]))
        if "image" in rec and not has_image(rec):
            rec = {k: v for k, v in rec.items() if k != "image"}
        yield rec
