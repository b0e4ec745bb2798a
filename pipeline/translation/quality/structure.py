"""Structure survives translation: protected spans, line breaks, numbers, amounts and emoji."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from pipeline.translation.quality.common import _clip, _r4
from pipeline.translation.segment import PROTECTED_PATTERNS, PROTECTED_RE, must_survive, segment


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


def structure_verdict(source: str, translation: str) -> dict | None:
    """One pair's structure verdict: None when it passes, else what went wrong (JSON-able, cacheable)."""
    translation = translation or ""
    missing, extra = _span_diff(source, translation)
    lost, gained = must_survive_diff(source, translation)
    newlines = [source.count("\n"), translation.count("\n")]
    if not (missing or extra or lost or newlines[0] != newlines[1]):
        return None
    return {"missing": missing[:10], "extra": extra[:10], "newlines": newlines,
            "numbers_missing": lost[:10], "numbers_extra": gained[:10]}


def structure_report(judged: Iterable[tuple[str, str, dict | None]], max_examples: int = 5) -> StructureReport:
    """Aggregate (source, translation, `structure_verdict`) triples into the report."""
    report = StructureReport()
    for source, translation, verdict in judged:
        report.checked += 1
        if verdict is None:
            continue
        report.failed += 1
        report.span_failures += bool(verdict["missing"] or verdict["extra"])
        report.newline_failures += verdict["newlines"][0] != verdict["newlines"][1]
        report.number_failures += bool(verdict["numbers_missing"])
        if len(report.examples) < max_examples:
            report.examples.append({"source": _clip(source), "translation": _clip(translation or ""), **verdict})
    return report


def check_structure(pairs: Iterable[tuple[str, str]], max_examples: int = 5) -> StructureReport:
    """Check (source, translation) pairs: every protected span of the source (`protected_spans`)
    occurs in the translation the same number of times, the number of line breaks ("\\n") is the
    same, and no number, currency amount, percentage or emoji of the source is missing
    (`must_survive_diff`, which also sees the ones inside sentences; an EXTRA one in the translation
    is shown in a failing pair's example but fails nothing: "three" may become "3").
    Returns counts and up to `max_examples` failing pairs, each naming its missing spans / numbers."""
    return structure_report(((s, t, structure_verdict(s, t)) for s, t in pairs), max_examples)
