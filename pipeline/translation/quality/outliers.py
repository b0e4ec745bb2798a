"""Outliers: translations far too short or long for their source, and repetition loops."""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType

from pipeline.languages import REGISTRY
from pipeline.translation.quality.common import _clip, _prose_lines, _prose_segments, _r4
from pipeline.translation.quality.structure import must_survive_diff


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


def outlier_verdict(src: str, tgt: str, lang: str, low: float = 0.33, high: float = 3.0,
                    min_repeats: int = 4) -> dict | None:
    """One pair's outlier verdict: None when it passes, else the length ratio and/or the repeated unit.

    A translation counts as a repetition only if its source has none (a source that says
    "ha ha ha ha" may be translated the same way)."""
    tgt = tgt or ""
    long_short = is_length_outlier(src, tgt, lang, low, high)
    unit = repeated_unit(tgt, min_repeats)
    if unit is not None and has_repetition(src, min_repeats):
        unit = None
    if not long_short and unit is None:
        return None
    return {"length": long_short, "ratio": _r4(min(length_ratio(src, tgt, lang), 1e6)) if long_short else None,
            "repeated": unit}


def outlier_report(judged: Iterable[tuple[str, str, str, dict | None]], max_examples: int = 5) -> OutlierReport:
    """Aggregate (source, translation, lang, `outlier_verdict`) into the report, with up to
    `max_examples` examples of each kind."""
    report = OutlierReport()
    shown = Counter()
    for src, tgt, lang, verdict in judged:
        report.checked += 1
        stats = report.per_language.setdefault(lang, {"checked": 0, "length_outliers": 0, "repetitions": 0})
        stats["checked"] += 1
        if verdict is None:
            continue
        report.flagged += 1
        if verdict["length"]:
            report.length_outliers += 1
            stats["length_outliers"] += 1
            if shown["length"] < max_examples:
                shown["length"] += 1
                report.examples.append({"kind": "length", "lang": lang, "ratio": verdict["ratio"],
                                        "source": _clip(src), "translation": _clip(tgt or "")})
        if verdict["repeated"] is not None:
            report.repetitions += 1
            stats["repetitions"] += 1
            if shown["repetition"] < max_examples:
                shown["repetition"] += 1
                report.examples.append({"kind": "repetition", "lang": lang, "repeated": _clip(verdict["repeated"], 60),
                                        "source": _clip(src), "translation": _clip(tgt or "")})
    return report


def find_outliers(
    pairs: Iterable[tuple[str, str, str]],
    low: float = 0.33,
    high: float = 3.0,
    min_repeats: int = 4,
    max_examples: int = 5,
) -> OutlierReport:
    """Length outliers (`is_length_outlier`) and repetition loops over (source, translation, lang)."""
    return outlier_report(((s, t, lang, outlier_verdict(s, t, lang, low, high, min_repeats)) for s, t, lang in pairs),
                          max_examples)
