"""Quality checks for machine-translated text: structure, language, length and repetition.

Pure functions and small report dataclasses, meant to run over a whole translated asset and feed
Dagster asset checks (the caller wraps them; this module never imports Dagster). Each check returns
COUNTS and a few EXAMPLES, and every report has ``to_metadata()`` giving a JSON-friendly dict.

* `protected_spans` / `check_structure`: every protected piece of a source (`<image>`, `<image 1>`,
  code, LaTeX, URLs, line markers, standalone numbers: what `segment.segment` keeps verbatim) must
  occur in the translation exactly as often as in the source, and the number of line breaks must
  not change.
* `must_survive_diff` (also in `check_structure` and the translator's guard `is_suspect_sentence`):
  the numbers, currency amounts, percentages and emoji of a source (`segment.must_survive`, also
  those inside sentences) must occur in the translation, as the same strings, as often.
* `LanguageIdentifier`: lingua-based language identification over the prose of each output,
  `check_language` gives the share of outputs identified as their target language.
* `length_ratio` / `is_length_outlier` / `has_repetition` / `find_outliers`: translations much too
  short or too long for their source (NLLB drops sentences, or invents text) and NLLB's
  degenerate loops ("the the the the", "的的的的").

Length, repetition and language checks look only at the PROSE of a text: the segments that
`segment.segment` marks `translate=True`. Code, LaTeX, URLs and numbers are not translated, so they
would only blur a character ratio, look like repetition (``0 0 0 0`` in a matrix) or confuse the
language detector.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType

from pipeline.languages import LANGS, REGISTRY
from pipeline.translation.segment import PROTECTED_PATTERNS, PROTECTED_RE, must_survive, segment

__all__ = [
    "protected_spans",
    "must_survive",
    "must_survive_diff",
    "check_structure",
    "StructureReport",
    "LINGUA_NAMES",
    "LanguageIdentifier",
    "LanguageReport",
    "LanguageShare",
    "CHAR_RATIO",
    "length_ratio",
    "is_length_outlier",
    "has_repetition",
    "repeated_unit",
    "find_outliers",
    "OutlierReport",
]

#: Longest text kept in a report example (characters); longer ones are cut and end with "…".
EXAMPLE_CHARS = 300


def _clip(text: str, limit: int = EXAMPLE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _r4(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


def _prose_segments(text: str) -> list[str]:
    return [s.text for s in segment(text) if s.translate]


def _prose_lines(text: str) -> list[str]:
    """The prose of `text`, one string per line: the translatable segments of each line joined by a
    space (a protected token between them counts as a gap, a line break ends the line)."""
    lines: list[str] = []
    current: list[str] = []
    for seg in segment(text):
        if seg.translate:
            current.append(seg.text)
        elif "\n" in seg.text or "\r" in seg.text:
            if current:
                lines.append(" ".join(current))
                current = []
    if current:
        lines.append(" ".join(current))
    return lines


# ---------------------------------------------------------------------------
# 1-2. Structure: protected spans and line breaks survive translation
# ---------------------------------------------------------------------------

_LINE_MARKER = PROTECTED_PATTERNS["line_marker"]


def _spans(text: str) -> list[tuple[str, str]]:
    """(span, kind) for each protected span of `text` (see `protected_spans`); kind is "marker"
    (a line marker), "token" (any other PROTECTED_RE match) or "number" (a kept piece with a digit)."""
    # Tokens are found in context, with the same scan as `segment` (a bare "-" or "1." is a line
    # marker only at a line start), so a kept segment is a token iff a PROTECTED_RE match starts there.
    token_starts = {m.start() for m in PROTECTED_RE.finditer(text) if m.end() > m.start()}
    out: list[tuple[str, str]] = []
    pos = 0
    for seg in segment(text):
        start, pos = pos, pos + len(seg.text)
        if seg.translate:
            continue
        core = seg.text.strip()
        if not core:
            continue
        if start in token_starts:
            m = _LINE_MARKER.match(text, start)
            out.append((core, "marker" if m is not None and m.end() == pos else "token"))
        elif any(c.isdigit() for c in core):
            out.append((core, "number"))
    return out


def protected_spans(text: str) -> list[str]:
    """The pieces of `text` that must survive translation verbatim, in order, stripped of blanks.

    These are the kept (``translate=False``) segments of `segment.segment` that are either a
    protected token (`segment.PROTECTED_RE`: ``<image>``, ``<image 1>``, code fences, inline code,
    LaTeX, URLs, e-mail addresses, line markers such as ``-`` or ``(A)``) or a standalone number
    (a kept piece with a digit: ``3.14``, ``42%``). Whitespace and pure punctuation / symbol pieces
    (``?``, ``...``, emoji) do not count. A number INSIDE a sentence ("There are 3 circles.") is
    part of the prose, so it is not a span; `must_survive_diff` checks it (and emoji) instead.

    >>> protected_spans("<image 1>\\nWhich value?\\n(A) 3.14\\n(B) 2.71")
    ['<image 1>', '(A)', '3.14', '(B)', '2.71']
    """
    return [span for span, _ in _spans(text)]


@dataclass
class StructureReport:
    """Result of `check_structure`: `failed` of `checked` pairs lost or changed structure."""

    checked: int = 0
    failed: int = 0
    span_failures: int = 0  # pairs with a missing or duplicated protected span
    newline_failures: int = 0  # pairs whose number of "\n" changed
    number_failures: int = 0  # pairs missing a number, amount, percentage or emoji (`must_survive_diff`)
    examples: list[dict] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.failed == 0

    @property
    def failure_share(self) -> float:
        return self.failed / self.checked if self.checked else 0.0

    def to_metadata(self) -> dict:
        return {
            "checked": self.checked,
            "failed": self.failed,
            "failure_share": _r4(self.failure_share),
            "span_failures": self.span_failures,
            "newline_failures": self.newline_failures,
            "number_failures": self.number_failures,
            "examples": list(self.examples),
        }


def _occurrences(spans: Iterable[str], text: str) -> Counter:
    """How often each span occurs in `text` as a substring, longest spans first, each character
    claimed once: "https://x.org/a" inside a surviving "https://x.org/a$x$" does not count again,
    nor does the "1" of "<image 1>" when "<image 1>" is itself a span."""
    claimed = bytearray(len(text))
    found: Counter = Counter()
    for span in sorted(set(spans), key=len, reverse=True):
        start = text.find(span)
        while start >= 0:
            end = start + len(span)
            if not any(claimed[start:end]):
                claimed[start:end] = b"\x01" * len(span)
                found[span] += 1
                start = text.find(span, end)
            else:
                start = text.find(span, start + 1)
    return found


def _span_diff(source: str, translation: str) -> tuple[list[str], list[str]]:
    """(missing, extra): source spans occurring fewer / more times in the translation than in the source.

    Missing. A line marker ("-", "1.", "(A)") is counted among the line markers of the translation
    (segmented the same way): it must still start a line. Any other span is counted as a substring
    (`_occurrences`), because re-segmenting the translation can hide a span that did survive: a URL
    glued to a CJK character ("访问https://x.org") no longer starts a word for the URL pattern, and a
    standalone "3.14" may end up inside a translated sentence. (The price: a dropped standalone number
    goes unnoticed when the same number also occurs elsewhere in the translation.)

    Extra (duplicated). A line marker that is a marker more often in the translation, or a token
    (`<image>`, code, LaTeX, URL...) that occurs more often in the translation than in the source
    both as a protected span and as a substring; either view alone is fooled by re-parsing (a "."
    of a translated sentence glued to an e-mail address), so a duplicated token that the
    translation's segmentation does not see (glued to a word) is missed. Standalone numbers are not
    checked for extras (a translated sentence may gain a digit), nor are spans only in the translation.
    """
    src_spans = _spans(source)
    if not src_spans:
        return [], []
    need_m = Counter(span for span, kind in src_spans if kind == "marker")
    need_o = Counter(span for span, kind in src_spans if kind != "marker")
    tokens = {span for span, kind in src_spans if kind == "token"}
    tgt_spans = _spans(translation)
    have = Counter(span for span, _ in tgt_spans)
    have_m = Counter(span for span, kind in tgt_spans if kind == "marker")
    have_sub = _occurrences(need_o, translation)
    src_sub = _occurrences(need_o, source)
    missing: list[str] = []
    extra: list[str] = []
    for span in dict.fromkeys(span for span, _ in src_spans):  # source order
        nm, no, hm = need_m[span], need_o[span], have_m[span]
        lost = max(0, nm - hm)
        if no:  # as substrings; a copy inside translated prose need not survive, hence the min
            lost = max(lost, min(no, src_sub[span]) - have_sub[span])
        if span in tokens:
            surplus = min(have[span] - no, have_sub[span] - min(no, src_sub[span]))
        else:
            surplus = hm - nm if not no else 0
        missing.extend([span] * lost)
        extra.extend([span] * max(0, surplus))
    return missing, extra


def must_survive_diff(source: str, translation: str) -> tuple[list[str], list[str]]:
    """(missing, extra): the must-survive tokens (`segment.must_survive`: numbers, currency amounts,
    percentages, emoji) of `source` that `translation` has fewer times, and those it has more times
    (or that are not in the source), each in order of first occurrence, repeated by the difference.

    Tokens are compared as multisets of exact strings: the model may move them, but "4.50" for
    "$4.50", "4,50" for "4.50" or "٣" for "3" is a loss (and an extra). ([], []) means they survived.

    >>> must_survive_diff("It costs $4.50 (16.7% more).", "Cuesta 4,50 $ (16.7% más).")
    (['$4.50'], ['4,50 $'])
    """
    src, tgt = Counter(must_survive(source)), Counter(must_survive(translation or ""))
    if src == tgt:
        return [], []
    missing = [tok for tok in src for _ in range(src[tok] - tgt[tok])]
    extra = [tok for tok in tgt for _ in range(tgt[tok] - src[tok])]
    return missing, extra


def check_structure(pairs: Iterable[tuple[str, str]], max_examples: int = 5) -> StructureReport:
    """Check (source, translation) pairs: every protected span of the source (`protected_spans`)
    occurs in the translation the same number of times, the number of line breaks ("\\n") is the
    same, and no number, currency amount, percentage or emoji of the source is missing
    (`must_survive_diff`, which also sees the ones inside sentences; an EXTRA one in the translation
    is shown in a failing pair's example but fails nothing: "three" may become "3").
    Returns counts and up to `max_examples` failing pairs, each naming its missing spans / numbers."""
    report = StructureReport()
    for source, translation in pairs:
        translation = translation or ""
        report.checked += 1
        missing, extra = _span_diff(source, translation)
        lost, gained = must_survive_diff(source, translation)
        src_nl, tgt_nl = source.count("\n"), translation.count("\n")
        bad_spans = bool(missing or extra)
        bad_nl = src_nl != tgt_nl
        bad_numbers = bool(lost)
        if not (bad_spans or bad_nl or bad_numbers):
            continue
        report.failed += 1
        report.span_failures += bad_spans
        report.newline_failures += bad_nl
        report.number_failures += bad_numbers
        if len(report.examples) < max_examples:
            report.examples.append({
                "source": _clip(source),
                "translation": _clip(translation),
                "missing": missing[:10],
                "extra": extra[:10],
                "newlines": [src_nl, tgt_nl],
                "numbers_missing": lost[:10],
                "numbers_extra": gained[:10],
            })
    return report


# ---------------------------------------------------------------------------
# 3. Language identification (lingua)
# ---------------------------------------------------------------------------

#: FLORES code -> name of the lingua `Language` member.
LINGUA_NAMES: Mapping[str, str] = MappingProxyType({c: lang.lingua for c, lang in REGISTRY.items()})

# Chinese vs Japanese. lingua decides by script: any hiragana / katakana -> Japanese, Han characters
# only -> Chinese (checked: "赤い円" -> JAPANESE; "三角形", "中央", "日本語" -> CHINESE). A Japanese
# SENTENCE practically always has kana (all toy Japanese sentences do), but a short Japanese noun
# phrase or answer ("三角形", "中央") is written in kanji only and cannot be told apart from Chinese
# by any detector. `check_language` therefore counts a jpn_Jpan output that is detected as Chinese
# and consists of at most JA_KANJI_ONLY_MAX Han characters (no other letters) as AMBIGUOUS: left out
# of the share, reported separately. A longer kanji-only output still counts as Chinese: that is a
# real failure (the model writing Chinese when asked for Japanese).
JA_KANJI_ONLY_MAX = 8
_HAN = re.compile(r"[\u3005\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")

#: Prose longer than this is cut before detection (speed; a few hundred characters are plenty).
DETECT_MAX_CHARS = 1000


@lru_cache(maxsize=8)
def _detector(langs: tuple[str, ...]):
    """One lingua detector per set of languages (building and loading its models is slow-ish)."""
    from lingua import Language, LanguageDetectorBuilder

    return LanguageDetectorBuilder.from_languages(*(getattr(Language, LINGUA_NAMES[c]) for c in langs)).build()


def _enough_letters(text: str, n: int) -> bool:
    if n <= 0:
        return True
    count = 0
    for c in text:
        if c.isalpha():
            count += 1
            if count >= n:
                return True
    return False


def _short_kanji_only(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return 0 < len(letters) <= JA_KANJI_ONLY_MAX and all(_HAN.match(c) for c in letters)


@dataclass
class LanguageShare:
    """Language-ID counts for the outputs of one target language."""

    lang: str
    checked: int = 0  # outputs given to the detector (and not ambiguous)
    matched: int = 0  # ... identified as `lang`
    skipped: int = 0  # outputs with fewer than `min_letters` letters of prose (not judged)
    ambiguous: int = 0  # short kanji-only Japanese detected as Chinese (see JA_KANJI_ONLY_MAX)
    confusions: Counter = field(default_factory=Counter)  # detected code (or "none") -> count

    @property
    def share(self) -> float | None:
        """matched / checked; None when nothing could be checked."""
        return self.matched / self.checked if self.checked else None

    def to_metadata(self) -> dict:
        return {
            "share": _r4(self.share),
            "checked": self.checked,
            "matched": self.matched,
            "skipped": self.skipped,
            "ambiguous": self.ambiguous,
            "confusions": dict(self.confusions.most_common(5)),
        }


@dataclass
class LanguageReport:
    """Result of `LanguageIdentifier.check_language`."""

    threshold: float
    per_language: dict[str, LanguageShare] = field(default_factory=dict)
    examples: list[dict] = field(default_factory=list)

    @property
    def checked(self) -> int:
        return sum(s.checked for s in self.per_language.values())

    @property
    def matched(self) -> int:
        return sum(s.matched for s in self.per_language.values())

    @property
    def skipped(self) -> int:
        return sum(s.skipped for s in self.per_language.values())

    @property
    def overall_share(self) -> float | None:
        return self.matched / self.checked if self.checked else None

    @property
    def shares(self) -> dict[str, float | None]:
        return {lang: s.share for lang, s in self.per_language.items()}

    @property
    def failing(self) -> list[str]:
        """Languages whose share is below the threshold (a language with nothing checked passes)."""
        return [lang for lang, s in self.per_language.items() if s.share is not None and s.share < self.threshold]

    @property
    def passed(self) -> bool:
        return not self.failing

    def to_metadata(self) -> dict:
        return {
            "threshold": _r4(self.threshold),
            "overall_share": _r4(self.overall_share),
            "checked": self.checked,
            "matched": self.matched,
            "skipped": self.skipped,
            "failing": self.failing,
            "per_language": {lang: s.to_metadata() for lang, s in self.per_language.items()},
            "examples": list(self.examples),
        }


class LanguageIdentifier:
    """Identify the language of texts among `langs` (FLORES codes) with ONE lingua detector.

    The detector is built once per set of languages and cached for the process (`_detector`); its
    language models load lazily on the first detection (about 2 s for the 11 languages), after
    which the toy corpus (654 sentences x 11 languages) takes well under a second.

    Only the prose of a text is judged (its translatable segments; code, LaTeX, URLs and numbers
    are dropped), cut to DETECT_MAX_CHARS. Prose with fewer than `min_letters` letters gives None.
    Short Latin-script texts (one or two words) are unreliable for any detector: "hello" -> Spanish.
    """

    def __init__(self, langs: Sequence[str] = LANGS, min_letters: int = 2):
        unknown = [c for c in langs if c not in LINGUA_NAMES]
        if unknown:
            raise ValueError(f"no lingua language for {unknown}; known: {sorted(LINGUA_NAMES)}")
        if len(set(langs)) < 2:
            raise ValueError("language identification needs at least two languages")
        self.langs: tuple[str, ...] = tuple(sorted(set(langs)))
        self.min_letters = min_letters
        self._to_flores: dict | None = None

    @property
    def detector(self):
        return _detector(self.langs)

    def _code(self, language) -> str | None:
        if language is None:
            return None
        if self._to_flores is None:
            from lingua import Language

            self._to_flores = {getattr(Language, LINGUA_NAMES[c]): c for c in self.langs}
        return self._to_flores.get(language)

    def _prose(self, text: str | None) -> str:
        return " ".join(_prose_segments(text or ""))[:DETECT_MAX_CHARS]

    def _detect_prose(self, prose: Sequence[str]) -> list[str | None]:
        out: list[str | None] = [None] * len(prose)
        idx = [i for i, p in enumerate(prose) if _enough_letters(p, self.min_letters)]
        if not idx:
            return out
        batch = [prose[i] for i in idx]
        det = self.detector
        if hasattr(det, "detect_languages_in_parallel_of"):
            found = det.detect_languages_in_parallel_of(batch)
        else:  # older lingua
            found = [det.detect_language_of(t) for t in batch]
        for i, lang in zip(idx, found):
            out[i] = self._code(lang)
        return out

    def detect(self, texts: Sequence[str]) -> list[str | None]:
        """The FLORES code detected for each text (None: too few letters to judge), batched."""
        return self._detect_prose([self._prose(t) for t in texts])

    def check_language(
        self,
        texts_by_lang: Mapping[str, Sequence[str]],
        threshold: float = 0.9,
        examples_per_lang: int = 2,
    ) -> LanguageReport:
        """Share of each target language's outputs identified as that language.

        `texts_by_lang` maps a FLORES code to the outputs that should be in it. Outputs whose prose
        has fewer than `min_letters` letters are `skipped` (not failures); short kanji-only Japanese
        detected as Chinese is `ambiguous` (see JA_KANJI_ONLY_MAX); both are left out of the share.
        A language fails when its share is below `threshold`. Up to `examples_per_lang`
        misidentified outputs per language are kept as examples.
        """
        unknown = [c for c in texts_by_lang if c not in self.langs]
        if unknown:
            raise ValueError(f"languages {unknown} are not among the identifier's {list(self.langs)}")
        report = LanguageReport(threshold=threshold)
        for lang, texts in texts_by_lang.items():
            stats = LanguageShare(lang)
            report.per_language[lang] = stats
            prose = [self._prose(t) for t in texts]
            shown = 0
            for text, p, got in zip(texts, prose, self._detect_prose(prose)):
                if got is None:
                    stats.skipped += 1
                    continue
                if got == lang:
                    stats.matched += 1
                    stats.checked += 1
                    continue
                if lang == "jpn_Jpan" and got == "zho_Hans" and _short_kanji_only(p):
                    stats.ambiguous += 1
                    continue
                stats.checked += 1
                stats.confusions[got] += 1
                if shown < examples_per_lang:
                    report.examples.append({"lang": lang, "detected": got, "text": _clip(text or "")})
                    shown += 1
        return report


# ---------------------------------------------------------------------------
# 4. Outliers: length ratio and repetition loops
# ---------------------------------------------------------------------------

#: Expected characters of prose in a language per character of English prose (code points, as
#: `len` counts them; spaces and punctuation included).
#:
#: Toy parallel corpus, median (min-max) over its 654 sentences: zho 0.33 (0.24-0.54), jpn 0.38
#: (0.29-0.71), kor 0.53 (0.39-0.82), hin 0.90 (0.60-1.40), urd 0.90 (0.55-1.40), ben 0.90
#: (0.50-1.65), arb 1.05 (0.48-1.39), rus 1.18 (0.57-1.47), fra 1.03 (0.81-1.44), spa 1.41
#: (0.91-1.87; the toy "¿...?" questions and long place phrases inflate it).
#: The toy sentences are short templates, so the table uses rounder values typical of real
#: prose (rules of thumb for e.g. FLORES-style sentences, not measured here): ideographic Chinese and
#: Japanese need about a third of the characters (Japanese a bit more, for its kana), Korean Hangul
#: syllables pack a whole syllable per character (~half), Romance languages run 10-20% longer than
#: typical characters of a translation per English character (see pipeline.languages.Language.char_ratio)
CHAR_RATIO: Mapping[str, float] = MappingProxyType({c: lang.char_ratio for c, lang in REGISTRY.items()})


def _prose_chars(text: str) -> int:
    return sum(len(s) for s in _prose_segments(text or ""))


def _char_ratio(lang: str) -> float:
    try:
        return CHAR_RATIO[lang]
    except KeyError:
        raise ValueError(f"no CHAR_RATIO for {lang!r}; known: {sorted(CHAR_RATIO)}") from None


def length_ratio(src: str, tgt: str, tgt_lang: str) -> float:
    """Prose characters of `tgt`, divided by CHAR_RATIO[tgt_lang], per prose character of `src`.

    ~1.0 for a translation of typical length. Only prose counts (protected pieces such as code or
    `<image>` are copied verbatim and would pull every ratio towards 1). No prose on either side:
    1.0; prose only in the translation: inf.
    """
    s, t = _prose_chars(src), _prose_chars(tgt) / _char_ratio(tgt_lang)
    if s == 0:
        return 1.0 if t == 0 else float("inf")
    return t / s


def is_length_outlier(
    src: str, tgt: str, tgt_lang: str, low: float = 0.33, high: float = 3.0, min_chars: int = 10
) -> bool:
    """Whether `length_ratio` is below `low` or above `high`.

    An empty translation of a source with prose is always an outlier. For a source with fewer than
    `min_chars` prose characters ("Yes.", "Red") ratios are noise, so only an empty translation or
    one longer than `high * min_chars` (normalised) characters counts.
    """
    return _length_outlier(_prose_chars(src), _prose_chars(tgt), tgt_lang, low, high, min_chars)


def _length_outlier(s: int, t_raw: int, tgt_lang: str, low: float = 0.33, high: float = 3.0,
                    min_chars: int = 10) -> bool:
    if s == 0:
        return t_raw > 0 and t_raw / _char_ratio(tgt_lang) > high * min_chars
    if t_raw == 0:
        return True
    t = t_raw / _char_ratio(tgt_lang)
    if s < min_chars:
        return t > high * min_chars
    return not low <= t / s <= high


def is_suspect_sentence(src: str, tgt: str, tgt_lang: str) -> bool:
    """The translator's guard, for one sentence and its translation: no letters, a loop, a length outlier,
    or must-survive tokens (numbers, amounts, percentages, emoji) that differ (`must_survive_diff`:
    missing or extra).

    The rules of `has_repetition` and `is_length_outlier`, without segmenting: the source is already a
    single sentence of prose, and this runs on every model output, so it has to be cheap. Lengths count
    every character, so an output padded with numbers or symbols can be retried where the asset
    check (which counts prose only) would pass it; retrying is harmless."""
    if not any(c.isalpha() for c in tgt):
        return True  # the source has letters (the translator refuses letter-free segments)
    if any(_repeated_in_line(line, 4) for line in tgt.splitlines()):
        return True
    if _length_outlier(len(src.strip()), len(tgt.strip()), tgt_lang):
        return True
    return must_survive_diff(src, tgt) != ([], [])


# Word level: prose with punctuation turned into spaces, split at whitespace, casefolded. Tokens are
# not `\w+` runs: Python's \w does not match Devanagari / Bengali vowel signs, which would cut words.
class _PunctToSpace(dict):
    def __missing__(self, code: int):
        value = " " if unicodedata.category(chr(code))[0] == "P" else code
        self[code] = value
        return value


_PUNCT_TO_SPACE = _PunctToSpace()
# CJK characters where a loop can form without spaces: Han, kana, Hangul syllables.
_CJK_CLASS = r"\u3005\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7a3\uf900-\ufaff\uff66-\uff9f"


@lru_cache(maxsize=8)
def _repeat_patterns(min_repeats: int) -> tuple[re.Pattern, re.Pattern]:
    more = min_repeats - 1
    # 1-4 whole tokens, then the same tokens `more` more times (tokens are single-space separated)
    words = re.compile(rf"(?<!\S)((?:\S+ ){{0,3}}?\S+)(?: \1(?!\S)){{{more},}}")
    # 1-6 characters starting with a CJK character, then the same characters `more` more times
    chars = re.compile(rf"([{_CJK_CLASS}][^\n]{{0,5}}?)\1{{{more},}}")
    return words, chars


# a loop inside one word ("Décriveveveveve"): 2-4 letters, then the same letters 4+ more times; no
# word of the eleven languages repeats a syllable five times in a row
_SUBWORD_LOOP = re.compile(r"([^\W\d_]{2,4})\1{4,}")


def repeated_unit(text: str, min_repeats: int = 4) -> str | None:
    """The first unit that `text` repeats `min_repeats` or more times in a row, or None.

    A unit is 1-4 words (compared casefolded, punctuation ignored: "The cat. The cat. The cat. The
    cat." repeats "the cat") containing a letter (a run of numbers is no loop), or 1-6 characters
    starting with a Chinese / Japanese / Korean character ("的的的的", "一个一个一个一个"), or 2-4 letters
    looping inside a word five times or more ("Décriveveveveve"). Only prose is
    searched, one line at a time: lists and code across lines are left alone.
    """
    if min_repeats < 2:
        raise ValueError("min_repeats must be at least 2")
    for line in _prose_lines(text or ""):
        unit = _repeated_in_line(line, min_repeats)
        if unit:
            return unit
    return None


def _repeated_in_line(line: str, min_repeats: int) -> str | None:
    words_re, chars_re = _repeat_patterns(min_repeats)
    m = chars_re.search(line) or _SUBWORD_LOOP.search(line)
    if m:
        return m.group(1)
    tokens = " ".join(line.translate(_PUNCT_TO_SPACE).casefold().split())
    for m in words_re.finditer(tokens):
        if any(c.isalpha() for c in m.group(1)):
            return m.group(1)
    return None


def has_repetition(text: str, min_repeats: int = 4) -> bool:
    """Whether `text` has a degenerate loop (see `repeated_unit`), like NLLB's "the the the the"."""
    return repeated_unit(text, min_repeats) is not None


@dataclass
class OutlierReport:
    """Result of `find_outliers`."""

    checked: int = 0
    length_outliers: int = 0
    repetitions: int = 0
    flagged: int = 0  # pairs with either problem
    per_language: dict[str, dict[str, int]] = field(default_factory=dict)
    examples: list[dict] = field(default_factory=list)

    @property
    def flagged_share(self) -> float:
        return self.flagged / self.checked if self.checked else 0.0

    @property
    def passed(self) -> bool:
        return self.flagged == 0

    def to_metadata(self) -> dict:
        return {
            "checked": self.checked,
            "length_outliers": self.length_outliers,
            "repetitions": self.repetitions,
            "flagged": self.flagged,
            "flagged_share": _r4(self.flagged_share),
            "per_language": {k: dict(v) for k, v in self.per_language.items()},
            "examples": list(self.examples),
        }


def find_outliers(
    pairs: Iterable[tuple[str, str, str]],
    low: float = 0.33,
    high: float = 3.0,
    min_repeats: int = 4,
    max_examples: int = 5,
) -> OutlierReport:
    """Length outliers (`is_length_outlier`) and repetition loops over (source, translation, lang).

    A translation counts as a repetition only if its source has none (a source that says
    "ha ha ha ha" may be translated the same way). Keeps up to `max_examples` examples of each kind.
    """
    report = OutlierReport()
    shown = Counter()
    for src, tgt, lang in pairs:
        tgt = tgt or ""
        report.checked += 1
        stats = report.per_language.setdefault(lang, {"checked": 0, "length_outliers": 0, "repetitions": 0})
        stats["checked"] += 1
        long_short = is_length_outlier(src, tgt, lang, low, high)
        unit = repeated_unit(tgt, min_repeats)
        if unit is not None and has_repetition(src, min_repeats):
            unit = None
        if long_short:
            report.length_outliers += 1
            stats["length_outliers"] += 1
            if shown["length"] < max_examples:
                shown["length"] += 1
                report.examples.append({
                    "kind": "length", "lang": lang, "ratio": _r4(min(length_ratio(src, tgt, lang), 1e6)),
                    "source": _clip(src), "translation": _clip(tgt),
                })
        if unit is not None:
            report.repetitions += 1
            stats["repetitions"] += 1
            if shown["repetition"] < max_examples:
                shown["repetition"] += 1
                report.examples.append({
                    "kind": "repetition", "lang": lang, "repeated": _clip(unit, 60),
                    "source": _clip(src), "translation": _clip(tgt),
                })
        if long_short or unit is not None:
            report.flagged += 1
    return report


