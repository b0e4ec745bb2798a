"""Split a text so that only natural-language sentences reach the translation model.

NLLB was trained on single sentences: it drops sentences from multi-sentence input, loops on noisy
input and makes up text for empty input. `segment` cuts a text into `Segment`s whose concatenation
is the text, byte for byte; only segments with `translate=True` go to the model, and `join` puts the
translations back between the ORIGINAL protected pieces and whitespace.

Kept verbatim (never translated):

* structural tokens, see `PROTECTED_PATTERNS`: `<image>`, `<image 1>` and other tag-like tokens,
  fenced code (``` and ~~~), inline code, LaTeX (`$..$`, `$$..$$`, `\\(..\\)`, `\\[..\\]`,
  `\\begin{env}..\\end{env}`, bare `\\commands`), URLs, e-mail addresses, and list / heading /
  quote / option markers at the start of a line (`- `, `* `, `1. `, `2) `, `# `, `> `, `(A) `, `A. `);
* "hard" whitespace: any run containing a line break, a tab or another control whitespace, and any
  run of two or more whitespace characters. A single space (or no-break / ideographic space)
  between words stays inside a sentence;
* whitespace between sentences and around a sentence (a translatable segment never starts or ends
  with whitespace);
* any piece without a letter (`str.isalpha`): punctuation, emoji, symbols, standalone numbers such
  as `3.14`, `1,000`, `42%`.

A protected token inside a sentence cuts it: "What colour is the shape in <image 1>?" gives
"What colour is the shape in" (translate), " ", "<image 1>", "?" (all kept). The model then sees a
fragment, which costs a little fluency but can never damage the token.

Sentence splitting inside a run of prose (no protected token, no hard whitespace): a sentence ends
after `.`, `!`, `?`, `…` (and any closing quotes / brackets after them) when whitespace follows and
the next character is not a lowercase letter ("e.g. this" and "3.14 is pi." do not split). A `.`
after a common abbreviation (Mr., Dr., vs., etc., Fig., e.g., i.e., U.S., ...) does not end a
sentence; "No." and "p." only count as abbreviations before a number ("No. 5" but "No. It is red.").
CJK `。！？` end a sentence with or without whitespace after them.

Everything is done with regexes compiled once, in O(n) per text.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType

from pipeline.languages import NO_SPACE_LANGS

__all__ = ["Segment", "segment", "join", "sentences", "PROTECTED_PATTERNS", "PROTECTED_RE", "NO_SPACE_LANGS"]


@dataclass(frozen=True)
class Segment:
    text: str
    translate: bool  # True only for a sentence that goes to the model


# Each pattern is compiled with re.MULTILINE (only `line_marker` uses ^). Order matters: at a given
# position the first alternative that matches wins (fences before inline code, $$ before $).
_PATTERN_SOURCES: dict[str, str] = {
    # ```lang ... ``` anywhere; an unclosed fence runs to the end of the text (code is never translated)
    "code_fence": r"(?P<bfence>`{3,})[\s\S]*?(?:(?P=bfence)|\Z)",
    # ~~~ ... ~~~ only at the start of a line ("wow~~~" in prose is not a fence)
    "tilde_fence": r"^[ \t]*(?P<tfence>~{3,})[\s\S]*?(?:(?P=tfence)|\Z)",
    # \begin{env} ... \end{env} (align, equation*, tabular, ...); the body may not open the same env
    # again, so that many unclosed \begin{x} stay linear
    "latex_env": r"\\begin\{(?P<env>[A-Za-z]+\*?)\}(?:[^\\]|\\(?!begin\{(?P=env)\}))*?\\end\{(?P=env)\}",
    # display math: $$ ... $$ and \[ ... \] (a \[ body may not contain another \[: linear when unclosed)
    "math_display": r"\$\$[\s\S]+?\$\$|\\\[(?:[^\\]|\\[^\[])*?\\\]",
    # inline math: \( ... \) (no nested \(), and $...$ opened by a non-space and closed by a non-space
    # that no digit follows (so "costs $5 and $10" is prose, pandoc's rule); no line break inside $..$
    "math_inline": r"\\\((?:[^\\]|\\[^(])*?\\\)|(?<!\\)\$(?=[^\s$])[^$\n]*?(?<![\s\\])\$(?!\d)",
    # inline code: ``x`` and `x` within one line
    "inline_code": r"``[^\n]+?``|`[^`\n]+`",
    # URLs: scheme:// or www. at a word start; the last character is not sentence punctuation
    # ("see https://x.org." keeps its "." out)
    "url": r"(?<![\w+@-])(?:(?:https?|ftp)://|www\.)"
    r"[^\s<>\"'`。，、（）「」]*[^\s<>\"'`。，、（）「」.,;:!?)\]}*]",
    # e-mail addresses (only starting at a word start, to stay linear on long words)
    "email": r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+",
    # <image>, <image 1>, <image_2>, <video>, <br/>, </b>, and special tokens like <|im_start|>
    "tag": r"</?[A-Za-z][\w:.-]*(?:[ _-]?\d+)?\s*/?>|<\|[^|\s<>]{1,64}\|>",
    # a bare LaTeX command with simple {arguments}: \frac{a}{b}, \alpha, \textbf{x}
    "latex_command": r"\\[A-Za-z]+(?:\{[^{}\n]*\})*",
    # line-start markers with their indent and the blanks after them: - * + • bullets, 1. 2) (3),
    # option letters (A) A) a) A., headings #..######, quotes > and > >
    "line_marker": r"^[ \t]*(?:[-*+•]|\d{1,3}[.)]|\(\d{1,3}\)|\(?[A-Za-z]\)|[A-Z]\.|#{1,6}|>(?:[ \t]*>)*)"
    r"(?:[ \t]+|(?=\s|\Z))",
}

#: name -> compiled pattern, one per kind of protected token (see the comments above each source).
PROTECTED_PATTERNS = MappingProxyType({k: re.compile(v, re.MULTILINE) for k, v in _PATTERN_SOURCES.items()})

# Cheap first-character filter (halves the scan time): every pattern above starts at a line start,
# at one of ` \ $ <, or at a word start (url, email).
_FIRST_CHAR_GUARD = r"(?=[`\\$<]|^|(?<![\w+-])[\w.+-])"

#: All of PROTECTED_PATTERNS as one alternation behind the guard; this is what `segment` scans with.
PROTECTED_RE = re.compile(
    _FIRST_CHAR_GUARD + "(?:" + "|".join(f"(?:{v})" for v in _PATTERN_SOURCES.values()) + ")", re.MULTILINE
)

# Whitespace that always separates (never sent to the model): 2+ whitespace characters, or a single
# whitespace character other than a word space (line breaks, tabs, \f, \v, \x1c-\x1f, \x85, ...).
_HARD_WS = re.compile(r"\s{2,}|[^\S \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]")

_CLOSERS = "\"'”’»)\\]}」』】）〕"
# A sentence end: Latin terminators (need whitespace after) or CJK ones (don't), closers, one blank.
_BOUNDARY = re.compile(rf"(?:(?P<latin>[.!?…]+)|[。！？]+)[{_CLOSERS}]*(?P<ws>\s)?")

# Lowercased, without the final dot. These never end a sentence...
_ABBREV = frozenset(
    """mr mrs ms dr prof st jr sr vs etc fig figs eq eqs cf al approx ca inc ltd co corp dept est
    mt ft gen gov sgt capt lt col rev hon esp viz jan feb mar apr jun jul aug sep sept oct nov dec
    e.g i.e""".split()
)
# ...and these only do not before a digit ("No. 5", "p. 12"; but "No. It is red.").
_ABBREV_BEFORE_DIGIT = frozenset("no nos p pp vol".split())
_INITIALS = re.compile(r"(?:[A-Za-z]\.)+[A-Za-z]")  # e.g / i.e / U.S / a.m (the final dot excluded)
_TOKEN_OPENERS = "\"'“‘([{«"

#: NLLB codes of languages written without spaces between sentences.
_LINE_BREAK = re.compile(r"[\n\r\v\f\x1c-\x1e\x85\u2028\u2029]")


def _has_letter(s: str) -> bool:
    return any(map(str.isalpha, s))


def _emit(chunk: str, out: list[Segment]) -> None:
    """Append `chunk` as [leading blanks] [core] [trailing blanks]; a core with a letter is translated."""
    if not chunk:
        return
    core = chunk.strip()
    if not core:
        out.append(Segment(chunk, False))
        return
    lead = len(chunk) - len(chunk.lstrip())
    if lead:
        out.append(Segment(chunk[:lead], False))
    out.append(Segment(core, _has_letter(core)))
    trail = len(chunk) - len(chunk.rstrip())
    if trail:
        out.append(Segment(chunk[len(chunk) - trail:], False))


def _is_abbreviation(piece: str, dot: int, nxt: str) -> bool:
    """Whether the `.` at piece[dot] closes an abbreviation rather than a sentence."""
    lo = max(0, dot - 16)
    j = dot
    while j > lo and not piece[j - 1].isspace() and piece[j - 1] not in _TOKEN_OPENERS:
        j -= 1
    token = piece[j:dot]
    if not token:
        return False
    low = token.lower()
    if low in _ABBREV or _INITIALS.fullmatch(token):
        return True
    return low in _ABBREV_BEFORE_DIGIT and nxt.isdigit()


def _split_prose(piece: str, out: list[Segment]) -> None:
    """Split a run without protected tokens or hard whitespace into sentences and blanks."""
    start = 0
    n = len(piece)
    for m in _BOUNDARY.finditer(piece):
        ws_start = m.start("ws")
        if m.group("latin") is not None:
            if ws_start < 0:
                continue  # "3.14", "e.g.x", "Hi!!" glued to the next word
            nxt = piece[m.end()] if m.end() < n else ""
            if nxt.islower():
                continue  # "e.g. this", "(really?) yes"
            term = m.group("latin")
            if term == "." and _is_abbreviation(piece, m.start("latin"), nxt):
                continue
            cut = ws_start
        else:
            cut = ws_start if ws_start >= 0 else m.end()
        if cut >= n:
            break
        _emit(piece[start:cut], out)
        start = cut
    _emit(piece[start:], out)


def _split_run(run: str, out: list[Segment]) -> None:
    """Split a run of text between protected tokens at hard whitespace, then into sentences."""
    pos = 0
    for m in _HARD_WS.finditer(run):
        if m.start() > pos:
            _split_prose(run[pos : m.start()], out)
        out.append(Segment(m.group(), False))
        pos = m.end()
    if pos < len(run):
        _split_prose(run[pos:], out)


def segment(text: str) -> list[Segment]:
    """Split text into segments; "".join(s.text for s in segment(text)) == text, byte for byte, ALWAYS.

    No segment is empty. A segment with translate=True has a letter and no leading or trailing
    whitespace and contains no protected token. Adjacent kept segments are not merged:
    "in <image 1>?" ends with "in" (translate), " ", "<image 1>", "?".
    """
    out: list[Segment] = []
    pos = 0
    for m in PROTECTED_RE.finditer(text):
        if m.start() == m.end():
            continue  # line_marker can't be empty, but stay safe
        if m.start() > pos:
            _split_run(text[pos : m.start()], out)
        out.append(Segment(m.group(), False))
        pos = m.end()
    if pos < len(text):
        _split_run(text[pos:], out)
    return out


def join(segments: list[Segment], translations: Sequence[str], target_lang: str) -> str:
    """Rebuild a text: each translate=True segment (in order) is replaced by the next item of
    `translations` (len must equal the number of translatable segments, else ValueError);
    protected segments are kept verbatim. For target_lang in NO_SPACE_LANGS (zho_Hans, jpn_Jpan,
    and zho_Hant, yue_Hant) a whitespace-only segment without a line break or tab that sits BETWEEN
    two translated sentences is dropped (no spaces between sentences in Chinese/Japanese);
    otherwise whitespace is kept as is."""
    wanted = sum(1 for s in segments if s.translate)
    if len(translations) != wanted:
        raise ValueError(f"{len(translations)} translations for {wanted} translatable segments")
    no_space = target_lang in NO_SPACE_LANGS
    parts: list[str] = []
    k = 0
    last = len(segments) - 1
    for i, seg in enumerate(segments):
        if seg.translate:
            parts.append(translations[k])
            k += 1
        elif (
            no_space
            and 0 < i < last
            and segments[i - 1].translate
            and segments[i + 1].translate
            and seg.text.isspace()
            and "\t" not in seg.text
            and not _LINE_BREAK.search(seg.text)
        ):
            continue
        else:
            parts.append(seg.text)
    return "".join(parts)


def sentences(text: str) -> list[str]:
    """The translatable segments' texts, in order (what would be sent to the model)."""
    return [s.text for s in segment(text) if s.translate]
