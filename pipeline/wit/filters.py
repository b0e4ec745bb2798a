"""The WIT filters: small steps that keep or drop a row, with a reason, and count what they did.

The shape is datatrove's `BaseFilter`: `filter(row)` answers True (keep) or (False, reason); `FilterStep`
runs it over rows, sends the dropped ones (with their reason) to an exclusion list and counts, per step,
rows in and rows dropped by reason. The paper's two WIT filters, in order:

- `TextQuality`: corrupted text (mojibake, the replacement character, control characters; ftfy's
  badness heuristic), captions too short to be real (measured in English-equivalent characters, so a
  Chinese caption is not held to an English length), captions without letters, and captions mostly
  in another script than their language's.
- `MinScore`: NLLB-CLIP image-caption cosine >= the threshold (paper: 0.0). Rows at exactly the
  threshold are kept.
"""
from __future__ import annotations

import unicodedata
from typing import Any, Iterable

from pipeline.languages import UnknownLanguage, language
from pipeline.stats import StepStats

Row = dict[str, Any]

# letters of a FLORES script, by the start of their Unicode character names
_SCRIPT_NAMES: dict[str, tuple[str, ...]] = {
    "Latn": ("LATIN",), "Cyrl": ("CYRILLIC",), "Arab": ("ARABIC",), "Deva": ("DEVANAGARI",),
    "Beng": ("BENGALI",), "Hang": ("HANGUL",), "Hans": ("CJK",), "Hant": ("CJK",),
    "Jpan": ("CJK", "HIRAGANA", "KATAKANA"),
}


def reason_kind(reason: str) -> str:
    """The counted kind of a reason: its first clause ("too short: 3 characters" -> "too short")."""
    return reason.split(":", 1)[0]


class FilterStep:
    """A keep-or-drop step over rows (datatrove's BaseFilter shape). Subclasses implement `filter`."""

    name = "filter"

    def filter(self, row: Row) -> bool | tuple[bool, str]:
        raise NotImplementedError

    def __call__(self, rows: Iterable[Row], stats: StepStats, excluded: list[Row]) -> list[Row]:
        """The rows this step keeps; the others go to `excluded` with `filter_step` and `reason`, and are
        counted in `stats` (rows_dropped, reasons, and `<name>_in` / `<name>_dropped` counters)."""
        kept = []
        n_in = n_dropped = 0
        for row in rows:
            n_in += 1
            verdict = self.filter(row)
            ok, reason = verdict if isinstance(verdict, tuple) else (verdict, None)
            if ok:
                kept.append(row)
                continue
            n_dropped += 1
            reason = reason or f"{self.name}: dropped"
            excluded.append({**row, "filter_step": self.name, "reason": reason})
            stats.reasons[reason_kind(reason)] += 1
        stats.rows_dropped += n_dropped
        stats.add(**{f"{self.name}_in": n_in, f"{self.name}_dropped": n_dropped})
        return kept


def script_share(text: str, script: str) -> float:
    """Share of the letters of `text` that belong to `script` (a FLORES script code); 1.0 without letters
    or for a script this check does not know."""
    names = _SCRIPT_NAMES.get(script)
    letters = [c for c in text if unicodedata.category(c).startswith("L")]
    if not names or not letters:
        return 1.0
    return sum(unicodedata.name(c, "").startswith(names) for c in letters) / len(letters)


class TextQuality(FilterStep):
    """Corrupted or stub captions (REFERENCE 1: over 95% of the paper's WIT rows went here)."""

    name = "text_quality"

    def __init__(self, min_chars: int = 12, min_script_share: float = 0.5, text_field: str = "caption",
                 lang_field: str = "lang"):
        self.min_chars, self.min_script_share = min_chars, min_script_share
        self.text_field, self.lang_field = text_field, lang_field

    def filter(self, row: Row) -> bool | tuple[bool, str]:
        from ftfy.badness import is_bad

        text = str(row.get(self.text_field) or "").strip()
        try:
            lang = language(row[self.lang_field])
        except (KeyError, UnknownLanguage):
            return False, f"unknown language: {row.get(self.lang_field)!r}"
        if "\ufffd" in text:
            return False, "mojibake: replacement character U+FFFD (text decoded with the wrong encoding)"
        if is_bad(text):
            return False, "mojibake: UTF-8 read as Latin-1/Windows-1252 (e.g. 'Ã©' for 'é')"
        if any(unicodedata.category(c) == "Cc" and c not in "\t\n" for c in text):
            return False, "control characters: the text holds C0/C1 control codes"
        if not any(unicodedata.category(c).startswith("L") for c in text):
            return False, "no letters: only digits, punctuation or symbols"
        equivalent = len(text) / lang.char_ratio
        if equivalent < self.min_chars:
            return False, (f"too short: {len(text)} characters ({equivalent:.0f} English-equivalent, "
                           f"minimum {self.min_chars})")
        share = script_share(text, lang.script)
        if share < self.min_script_share:
            return False, f"wrong script: {share:.0%} of the letters are {lang.script} ({lang.flores})"
        return True


class MinScore(FilterStep):
    """NLLB-CLIP image-caption cosine >= threshold; a row at exactly the threshold is kept."""

    name = "clip_score"

    def __init__(self, threshold: float = 0.0, field: str = "score"):
        self.threshold, self.field = threshold, field

    def filter(self, row: Row) -> bool | tuple[bool, str]:
        score = row[self.field]
        if score >= self.threshold:
            return True
        return False, f"low image-caption similarity: {score:.4f} < {self.threshold}"
