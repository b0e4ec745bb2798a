"""The elements of a JSON list (`[{...}, {...}, ...]`), one at a time, in bounded memory, recovering after
a malformed element.

The file is decoded a chunk at a time (undecodable bytes are kept as surrogate escapes, so a bad byte
spoils only the element that holds it) and each element is parsed with the standard library's C
decoder (`json.JSONDecoder.raw_decode`). When an element does not parse, a small scanner finds where
it ends (the next ',' or ']' outside strings and brackets) and the reader carries on with the next
element, so one malformed element costs that element only.

What cannot be recovered: an element whose brackets or quotes never balance (a truncated file, a
stray quote that swallows the rest). The scanner then never finds the element's end; once it has
looked further than the row limit (`raw_limits.max_row_bytes`) it keeps scanning without holding
text, and if the file ends first, everything from that element to the end of the file is one
quarantined record, "malformed JSON: element K (line L) never ends ...": the elements before it are
kept. An element that does end but is longer than the limit is quarantined as "too long" and the
reader carries on.

(ijson was considered: it streams fast, but its parser cannot resume after an error, and it reports
no byte offsets from which to restart, so one bad element would cost the rest of the file.)

Each item is (0-based element index, 1-based line where the element starts, the value or None,
None or the reason it was not read, the element's raw text).
"""
from __future__ import annotations

import codecs
import json
import re
from typing import IO, Any, Iterator

from pipeline.raw.files import read_chunks

_DECODER = json.JSONDecoder()
_WS = re.compile(r"[ \t\r\n]*")
_IN_STRING = re.compile(r'["\\]')
_OUTSIDE = re.compile(r'[\[\]{},"]')
_SURROGATE = re.compile("[\udc80-\udcff]")

Element = tuple[int, int, Any, "str | None", str]


class _Scan:
    """Finds the end of one list element: the ',' or ']' outside strings and brackets. A closing bracket
    closes the innermost opening one of its kind (so `{"a": [}` ends at its '}'), a stray one is ignored,
    and a ']' with no '[' open is the end of the list. Resumable: `run` may be called on successive pieces
    of text."""

    def __init__(self) -> None:
        self.open: list[str] = []  # the brackets open in the element, innermost last
        self.in_string = False
        self.escaped = False

    def _close(self, opener: str) -> None:
        if opener in self.open:
            del self.open[len(self.open) - 1 - self.open[::-1].index(opener):]

    def run(self, text: str, i: int) -> int | None:
        n = len(text)
        while i < n:
            if self.escaped:
                self.escaped = False
                i += 1
                continue
            if self.in_string:
                m = _IN_STRING.search(text, i)
                if m is None:
                    return None
                if m.group() == "\\":
                    self.escaped = True
                else:
                    self.in_string = False
                i = m.end()
                continue
            m = _OUTSIDE.search(text, i)
            if m is None:
                return None
            c, i = m.group(), m.end()
            if c == '"':
                self.in_string = True
            elif c in "[{":
                self.open.append(c)
            elif c == "}":
                self._close("{")
            elif c == "]" and "[" in self.open:
                self._close("[")
            elif c == "]" or not self.open:  # ']' with no '[' open, or ',' at the top: the element ends
                return i - 1
        return None


def _bad_byte(text: str) -> str | None:
    m = _SURROGATE.search(text)
    if m is None:
        return None
    return f"byte 0x{ord(m.group()) - 0xDC00:02x}"


class _Buffer:
    def __init__(self, f: IO[bytes], name: str) -> None:
        self.name = name
        self.chunks = read_chunks(f, name)
        self.decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        self.text = ""
        self.eof = False

    def fill(self, keep_from: int) -> bool:
        """Drop text before `keep_from` and append the next chunk; False at the end of the file."""
        if self.eof:
            self.text = self.text[keep_from:]
            return False
        chunk = next(self.chunks, None)
        if chunk is None:
            self.eof = True
            more = self.decoder.decode(b"", final=True)
        else:
            more = self.decoder.decode(chunk)
        self.text = self.text[keep_from:] + more
        return chunk is not None or bool(more)


def iter_json_list(f: IO[bytes], name: str, max_chars: int) -> Iterator[Element]:
    """Every element of the JSON list in `f` (see the module docstring); the caller has checked that the
    first character that is not whitespace is '['."""
    b = _Buffer(f, name)
    pos, line, index = 0, 1, 0

    def skip_ws() -> bool:
        """Move past whitespace, reading more as needed; False at the end of the file."""
        nonlocal pos, line
        while True:
            end = _WS.match(b.text, pos).end()
            line += b.text.count("\n", pos, end)
            pos = end
            if pos < len(b.text):
                return True
            b.fill(pos)
            pos = 0
            if b.eof and not b.text:
                return False

    skip_ws()
    if b.text[pos:pos + 1] == "\ufeff":
        pos += 1
        skip_ws()
    pos += 1  # the '['
    if skip_ws() and b.text[pos] == "]":
        pos += 1
    else:
        while True:
            if not skip_ws():
                yield index, line, None, ("malformed JSON: the file ends without the list's closing ']' "
                                          f"(after line {line}); the file may be truncated"), ""
                return
            start, start_line = pos, line
            value, problem, end = _fast(b.text, start)
            if end is None:  # a parse error, or an element that may go on past the text read so far
                value, problem, start, end, raw, dropped_lines = _slow(b, start, start_line, index, max_chars)
                if end is None:  # never ends: the rest of the file is quarantined with it
                    yield index, start_line, None, problem, raw
                    return
                line += dropped_lines
            else:
                raw = b.text[start:end]
                if end - start > max_chars:
                    value, problem = None, (f"too long: element {index} (line {start_line}) has {end - start} "
                                            f"characters (limit {max_chars}, raw_limits.max_row_bytes)")
            if problem is None or problem.startswith("malformed JSON"):  # a bad byte explains a parse error
                bad = _bad_byte(raw)
                if bad:
                    value, problem = None, (f"bad encoding: {bad} in element {index} (line {start_line}) is "
                                            f"not UTF-8; re-encode the file as UTF-8")
            yield index, start_line, value, problem, raw
            index += 1
            line += b.text.count("\n", start, end)
            pos = end  # at the ',' or ']' after the element (see _fast and _slow)
            if b.text[pos] == "]":
                pos += 1
                break
            pos += 1
    # after the list: only whitespace
    if skip_ws():
        tail_line, head = line, b.text[pos:pos + 500]
        while b.fill(len(b.text)):
            pass
        yield index, tail_line, None, f"malformed JSON: data after the list's closing ']' at line {tail_line}", head


def _fast(text: str, start: int) -> tuple[Any, str | None, int | None]:
    """Parse the element at `start` in one call: (value, None, index of the ',' or ']' after it), or end
    None when the slow path must decide (a parse error, or text that may continue past the buffer)."""
    try:
        value, end = _DECODER.raw_decode(text, start)
    except (json.JSONDecodeError, RecursionError):
        return None, None, None
    sep = _WS.match(text, end).end()
    if sep >= len(text) or text[sep] not in ",]":
        return None, None, None
    return value, None, sep


def _slow(b: _Buffer, start: int, start_line: int, index: int, max_chars: int):
    """Find where the element at `start` ends, reading more text only as needed, and parse it alone.

    Returns (value, problem, start, end, raw, lines of text dropped unread): `start` and `end` are where
    the element now is in `b.text` (reading more drops the text before the element; a too-long
    element's text is dropped too, and start = end = its closing ',' or ']'); end is None when the
    element never ends, and the problem says so."""
    scan = _Scan()
    end = scan.run(b.text, start)
    while end is None and len(b.text) - start <= max_chars:
        scanned = len(b.text) - start
        more = b.fill(start)  # drops the text before the element, even at the end of the file
        start = 0
        if not more:
            break
        end = scan.run(b.text, scanned)
    if end is None and len(b.text) - start > max_chars:
        # too long to hold: keep scanning without keeping the text, to find where the next element starts
        head, dropped = b.text[start:start + 500], b.text.count("\n", start)
        b.text = ""
        while end is None and b.fill(len(b.text)):
            end = scan.run(b.text, 0)
            dropped += b.text.count("\n", 0, len(b.text) if end is None else end)
        if end is None:
            return None, _never_ends(index, start_line), 0, None, head, 0
        b.text = b.text[end:]
        return None, (f"too long: element {index} (line {start_line}) has more than {max_chars} characters "
                      f"(limit raw_limits.max_row_bytes)"), 0, 0, head, dropped
    if end is None:
        return None, _never_ends(index, start_line), start, None, b.text[start:start + 500], 0
    span = b.text[start:end]
    try:
        return json.loads(span), None, start, end, span, 0
    except json.JSONDecodeError as e:
        where = start_line + span.count("\n", 0, e.pos)
        return (None, f"malformed JSON: {e.msg} at line {where} (character {e.pos} of element {index})",
                start, end, span, 0)
    except RecursionError:
        return None, f"too deep: element {index} nests deeper than the JSON parser allows", start, end, span, 0


def _never_ends(index: int, line: int) -> str:
    return (f"malformed JSON: element {index} (line {line}) never ends: unbalanced brackets or quotes, or a "
            f"truncated file; the rest of the file from line {line} is quarantined with it, unread")
