"""The score histogram of a WIT partition, with the threshold line, as a PNG (matplotlib, no display)."""
from __future__ import annotations

import io
from typing import Sequence


def score_histogram_png(kept: Sequence[float], dropped: Sequence[float], threshold: float, title: str) -> bytes:
    """Stacked histogram of kept and dropped scores in [-1, 1] and a vertical line at the threshold."""
    from matplotlib.figure import Figure  # no pyplot: no global backend, safe in threads and workers

    fig = Figure(figsize=(6, 3.2), dpi=90)
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.16, top=0.9)  # fixed margins: tight_layout costs ~0.1 s
    ax = fig.add_subplot()
    lo = min([-0.5, *kept, *dropped])
    hi = max([0.5, *kept, *dropped])
    bins = [lo + (hi - lo) * k / 40 for k in range(41)]
    ax.hist([list(kept), list(dropped)], bins=bins, stacked=True, color=["#2a9d8f", "#e76f51"],
            label=[f"kept ({len(kept)})", f"dropped by score ({len(dropped)})"])
    ax.axvline(threshold, color="black", linestyle="--", linewidth=1.2, label=f"threshold {threshold:g}")
    ax.set_xlabel("NLLB-CLIP image-caption cosine")
    ax.set_ylabel("pairs")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()
