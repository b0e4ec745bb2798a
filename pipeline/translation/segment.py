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

Must-survive tokens. A number INSIDE a sentence goes to the model with its sentence, and NLLB may
drop or alter it (or an emoji, which its vocabulary mostly lacks). `must_survive` lists the tokens of a
text that a translation must contain unchanged, by exact string equality (see `MUST_SURVIVE_RE`):

* numbers: digits with inner `.` `,` or no-break / thin space separators (`3`, `3.14`, `1,000,000`,
  `1\\u00a0000`; with a plain space, `1 000` is two numbers); a sign, a unit or a letter next to
  it is not part of it. Digits glued to a Latin, Greek or Cyrillic letter, a digit or `_` on either
  side are part of a word, not a number (`1st`, `3D`, `H2O`, `10km`, `x_1`, `mp3`); next to other
  scripts they are numbers (`有3个`, `3つ`, `3개`);
* currency amounts: a currency symbol (Unicode category Sc) before or after a number, with at most
  one (no-break) space between (`$4.50`, `€3`, `5,25 €`, `US$5` gives `$5`);
* percentages: a number followed by `%`, `％` or `‰`, with at most one (no-break) space (`16.7%`,
  `16,7 %`);
* emoji: one pictograph with its variation selector, skin tone and zero-width-joiner sequence
  (`👍🏽`, `👨‍👩‍👧`), a flag (two regional indicators) or a keycap (`1️⃣`).

Exact equality is the rule: "4.50" and "4,50", "16.7%" and "16,7 %", "3" and "٣" are different
tokens, so a translation that localises a number counts as having lost it. `split_must_survive` cuts
a sentence around these tokens and `join_must_survive` puts translated pieces back around them
verbatim (the translator's fallback when the model keeps losing them).

Everything is done with regexes compiled once, in O(n) per text.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType

from pipeline.languages import NO_SPACE_LANGS

__all__ = ["Segment", "segment", "join", "sentences", "PROTECTED_PATTERNS", "PROTECTED_RE", "NO_SPACE_LANGS",
           "MUST_SURVIVE_RE", "must_survive", "split_must_survive", "join_must_survive"]


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
    two translated sentences is dropped (no spaces between sentences in Chinese/Japanese), unless
    dropping it would glue two numbers into one ("7." + "5" is not "7.5"); otherwise whitespace is
    kept as is."""
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
            and not _glues(parts[-1] if parts else "", translations[k])
        ):
            continue
        else:
            parts.append(seg.text)
    return "".join(parts)


def sentences(text: str) -> list[str]:
    """The translatable segments' texts, in order (what would be sent to the model)."""
    return [s.text for s in segment(text) if s.translate]


# ---------------------------------------------------------------- must-survive tokens (module doc)

# Letters that glue to digits into a word ("1st", "H2O", "10km"): Latin, Greek, Cyrillic. CJK, kana,
# Hangul, Devanagari, Arabic... are left out, so that "有3个", "3つ", "3개" keep their number.
_GLUE_LETTERS = (
    r"A-Za-z\u00aa\u00b5\u00ba\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff"  # Latin
    r"\u0370-\u03ff\u1f00-\u1fff"  # Greek
    r"\u0400-\u052f"  # Cyrillic
)
_GLUE = rf"[{_GLUE_LETTERS}\d_]"
_NUM_SEP = r"[.,\u00a0\u202f\u2009]"  # decimal / thousands separators between digits
_BLANK = r"[ \u00a0\u202f]"  # at most one of these between a number and its currency sign or %
_CURRENCY = "".join(re.escape(chr(c)) for c in range(0x20000) if unicodedata.category(chr(c)) == "Sc")
# a number, not glued to a letter / digit / "_" and not part of a longer number on either side
_NUMBER = rf"(?<!{_GLUE})(?<!\d{_NUM_SEP})\d+(?:{_NUM_SEP}\d+)*(?!{_GLUE}|{_NUM_SEP}\d|\ufe0f?\u20e3)"
# pictographs (regional indicators U+1F1E6-1F1FF excluded: they only count in pairs, as flags)
_PICTO = (
    "\U0001f000-\U0001f1e5\U0001f200-\U0001faff\u2600-\u27bf\u2b05-\u2b07\u2b1b\u2b1c\u2b50\u2b55"
    "\u231a\u231b\u23e9-\u23f3\u23f8-\u23fa\u3030\u303d\u3297\u3299"
)
_EMOJI_ONE = rf"[{_PICTO}][\ufe0e\ufe0f]?[\U0001f3fb-\U0001f3ff]?[\U000e0020-\U000e007f]*"
_EMOJI = rf"[0-9#*]\ufe0f?\u20e3|[\U0001f1e6-\U0001f1ff]{{2}}|{_EMOJI_ONE}(?:\u200d{_EMOJI_ONE})*"

#: A token that must reach the translation unchanged: a keycap / flag / emoji, a currency amount, a
#: percentage or a number (see the module doc). Linear: no alternative can overlap itself.
MUST_SURVIVE_RE = re.compile(
    rf"{_EMOJI}|[{_CURRENCY}]{_BLANK}?{_NUMBER}|{_NUMBER}(?:{_BLANK}?[{_CURRENCY}%％‰])?"
)


def must_survive(text: str) -> list[str]:
    """The tokens of `text` that a translation must keep verbatim, in order (see the module doc).

    >>> must_survive("The price rose from $4.50 to $5.25, i.e. 16.7%. 👍")
    ['$4.50', '$5.25', '16.7%', '👍']
    """
    return MUST_SURVIVE_RE.findall(text)


def _core_bounds(piece: str) -> tuple[int, int]:
    """(start, end) of the part of `piece` from its first to its last alphanumeric character."""
    start = next((i for i, c in enumerate(piece) if c.isalnum()), len(piece))
    end = next((i + 1 for i in range(len(piece) - 1, start - 1, -1) if piece[i].isalnum()), start)
    return start, end


def split_must_survive(sentence: str) -> list[Segment]:
    """Cut `sentence` around its must-survive tokens; "".join(s.text for s in result) == sentence.

    The tokens are kept (translate=False); so is everything between them outside the first and last
    letter-or-digit (blanks, punctuation, brackets: "(", ", ", "."). What is left, from a first to a
    last alphanumeric character and with a letter, is translate=True: "The price rose from $4.50 to
    $5.25." gives "The price rose from" (translate), " ", "$4.50", " ", "to", " ", "$5.25", ".".
    A sentence without tokens gives one translatable piece (its core, if it has a letter)."""
    out: list[Segment] = []

    def piece(text: str) -> None:
        start, end = _core_bounds(text)
        for part, translate in ((text[:start], False), (text[start:end], None), (text[end:], False)):
            if part:
                out.append(Segment(part, _has_letter(part) if translate is None else False))

    pos = 0
    for m in MUST_SURVIVE_RE.finditer(sentence):
        piece(sentence[pos : m.start()])
        out.append(Segment(m.group(), False))
        pos = m.end()
    piece(sentence[pos:])
    return out


def _glues(left: str, right: str, between: str = "") -> bool:
    """Whether `left + between + right` changes a must-survive token at the seam: "7." + "5",
    "5" + "km", "5" + "$4" (a "5 $" amount), "👍" + "🏽". Looks at 32 characters a side."""
    left, right = left[-32:], right[:32]
    if not left or not right:
        return False
    return must_survive(left + between + right) != must_survive(left) + must_survive(right)


def join_must_survive(pieces: Sequence[Segment], translations: Sequence[str]) -> str:
    """Rebuild a sentence cut by `split_must_survive`: each translate=True piece (in order) becomes the
    next of `translations` (stripped), the other pieces stay verbatim; the result is stripped.

    If a translation glues onto a neighbouring token and changes it ("There is" + "3" + "circles"
    reads no number; "Payez 5" + " " + "$4" reads "5 $", "4"), every translation is padded with a
    space on each side, then with two (one blank can still join a number and a currency sign), until
    every must-survive token of the sentence is a token of the result."""
    wanted = sum(1 for s in pieces if s.translate)
    if len(translations) != wanted:
        raise ValueError(f"{len(translations)} translations for {wanted} translatable pieces")
    outputs = iter(translations)
    chunks = [(next(outputs).strip(), True) if p.translate else (p.text, False) for p in pieces]
    needed = Counter(must_survive("".join(p.text for p in pieces)))
    for pad in ("", " ", "  "):
        out = "".join(pad + text + pad if translated else text for text, translated in chunks).strip()
        if not needed - Counter(must_survive(out)):
            break
    return out
