"""Helpers every check shares: examples cut to size, rounding, the prose of a text."""
from __future__ import annotations

from pipeline.translation.segment import segment

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
