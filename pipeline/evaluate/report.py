"""The report: the paper's tables in their shape, with this run's numbers and the paper's side by side, and
a plot of accuracy per language per stage. Written to `evaluation/report/` as Markdown and PNG.

- Table 1 (back-translation check): per stage, MMMU in English next to MMMU Multi translated back into
  English (mean over the languages), with the chrF of the back-translation against the original.
- Table 2 (the ablation): the rows of `configs/ablations/` from `ablations/table2.json` when the toy
  Table 2 job has run (`make table2`), each with the paper's numbers.
- Table 3 (this run): MMMU and MMMU Multi (mean over the ten languages) per stage, beside the paper's models.
"""
from __future__ import annotations

import json
import os
import statistics
from pathlib import Path
from typing import Any

from pipeline.evaluate.run import BACK, EVAL_DIR, SOURCE_LANG, read_results
from pipeline.lake import Lake, build_manifest, write_text_atomic
from pipeline.stats import StepResult, StepStats

REPORT_DIR = "report"
TABLE2_FILE = ("ablations", "table2.json")

#: the paper's numbers (REFERENCE 1), labelled as the paper's wherever they are shown
PAPER_TABLE1 = {"pretrained": (34.61, 34.45), "finetuned": (34.14, 33.02)}
PAPER_TABLE2 = {
    "table2_row1_no_cambrian": ("ccSBU+LAION+LAVAM+PALO", "-", 31.02, 29.83),
    "table2_row2_ci": ("+CI", "-", 34.14, 31.21),
    "table2_row3_ci_m": ("+CI M", "-", 36.69, 33.57),
    "table2_row4_ci_then_m": ("+CI", "CI M+CT M+MText", 37.07, 32.90),
    "table2_row5_ci_m_then_m": ("+CI M", "CI M+CT M+MText", 37.27, 33.45),
    "table2_row6_ci_then_english": ("+CI", "CI+CT", 35.19, 32.93),
    "table2_row7_ci_then_english_mtext": ("+CI", "CI+CT+MText", 35.65, 32.60),
}
PAPER_TABLE3 = {"PALO": (28.36, 13.12), "Qwen-VL 2.5": (52.89, 25.46), "M-MiniGPT4": (37.27, 33.45)}


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def _md(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


def collect(lake: Lake, stages: list[int], languages: list[str]) -> dict[int, dict[str, dict]]:
    """stage -> partition -> results.json, for what has been evaluated."""
    out: dict[int, dict[str, dict]] = {}
    for n in stages:
        for part in [SOURCE_LANG, *languages, *[BACK + lang for lang in languages]]:
            res = read_results(lake, n, part)
            if res is not None:
                out.setdefault(n, {})[part] = res
    return out


def _acc(res: dict | None) -> float | None:
    return None if res is None else res["overall"]["acc"]


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.fmean(vals) if vals else None


def back_chrf(lake: Lake, languages: list[str]) -> dict[str, float]:
    """The chrF of each back-translation against the original English (the translation step's manifest)."""
    out = {}
    for lang in languages:
        path = Path(lake.path("translated", "mmmu_back", lang, "manifest.json").path)
        try:
            out[lang] = json.loads(path.read_text())["extra"]["chrf_vs_original"]
        except (OSError, ValueError, KeyError):
            continue
    return out


def plot(results: dict[int, dict[str, dict]], languages: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    langs = [SOURCE_LANG, *languages]
    fig, ax = plt.subplots(figsize=(9, 3.6), dpi=100)
    width = 0.8 / max(1, len(results))
    for i, (stage, parts) in enumerate(sorted(results.items())):
        ys = [100 * (_acc(parts.get(lang)) or 0.0) for lang in langs]
        ax.bar([x + i * width for x in range(len(langs))], ys, width, label=f"stage {stage}")
    ax.set_xticks([x + width * (len(results) - 1) / 2 for x in range(len(langs))],
                  [lang.split("_")[0] for lang in langs])
    ax.set_ylabel("MMMU accuracy (%)"), ax.set_title("MMMU (eng) and MMMU Multi per language, per stage")
    ax.legend(fontsize=8), ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def build_report(lake: Lake, stages: list[int], languages: list[str], profile_name: str) -> StepResult:
    """Tables 1-3 and the plot from the evaluation results in the lake; see the module docstring."""
    stats = StepStats("mmmu_report", unit="tables")
    langs = [lang for lang in languages if lang != SOURCE_LANG]
    with stats.timed():
        results = collect(lake, stages, langs)
        chrf = back_chrf(lake, langs)
        out = Path(lake.path(EVAL_DIR, REPORT_DIR).path)
        out.mkdir(parents=True, exist_ok=True)

        t3 = [[f"this run ({profile_name}), stage {n}", _pct(_acc(p.get(SOURCE_LANG))),
               _pct(_mean([_acc(p.get(lang)) for lang in langs]))] for n, p in sorted(results.items())]
        t3 += [[f"paper: {name}", f"{a:.2f}", f"{b:.2f}"] for name, (a, b) in PAPER_TABLE3.items()]
        per_lang = [[f"stage {n}", *[_pct(_acc(p.get(lang))) for lang in [SOURCE_LANG, *langs]]]
                    for n, p in sorted(results.items())]
        t1 = [[f"this run, stage {n}", _pct(_acc(p.get(SOURCE_LANG))),
               _pct(_mean([_acc(p.get(BACK + lang)) for lang in langs])),
               f"{statistics.fmean(chrf.values()):.1f}" if chrf else "-"] for n, p in sorted(results.items())]
        t1 += [[f"paper: {name}", f"{a:.2f}", f"{b:.2f}", "-"] for name, (a, b) in PAPER_TABLE1.items()]

        table2 = _table2(lake)
        plot(results, langs, out / "accuracy.png")
        text = "\n\n".join([
            f"# MMMU report ({profile_name})",
            "Accuracy in %, scored exactly like the official MMMU code. MMMU Multi is the mean over the ten "
            "translated languages. Rows marked *paper* are the published numbers, not ours.",
            "## Table 3: MMMU and MMMU Multi", _md(["model", "MMMU", "MMMU Multi"], t3),
            "### Per language", _md(["stage", *[lang.split("_")[0] for lang in [SOURCE_LANG, *langs]]], per_lang),
            "## Table 1: back-translation check",
            _md(["model", "MMMU (English)", "MMMU back-translated", "chrF back vs original"], t1),
            "## Table 2: stage-2/3 data ablation", table2,
            "![accuracy per language per stage](accuracy.png)",
        ])
        write_text_atomic(out / "report.md", text + "\n")
    stats.items = 3
    summary = {n: {"mmmu": _acc(p.get(SOURCE_LANG)), "mmmu_multi": _mean([_acc(p.get(lang)) for lang in langs]),
                   "back_translated": _mean([_acc(p.get(BACK + lang)) for lang in langs])}
               for n, p in sorted(results.items())}
    stats.counters.update({f"stage{n}_{k}": round(v, 4) for n, s in summary.items() for k, v in s.items() if v is not None})
    manifest = build_manifest(out, {"report.md": None, "accuracy.png": None}, extra={"summary": summary})
    return StepResult(str(out), manifest, stats)


def _table2(lake: Lake) -> str:
    path = Path(lake.path(*TABLE2_FILE).path)
    if not path.is_file():
        return "_not run yet: `make table2` trains and evaluates every row of `configs/ablations/`_"
    data = json.loads(path.read_text())
    rows = []
    for row, (s2, s3, pm, pmm) in PAPER_TABLE2.items():
        got = data.get("rows", {}).get(row)
        if got is None:
            continue
        fmt = lambda k: f"{100 * got[k]['mean']:.2f} ± {100 * got[k]['std']:.2f}"  # noqa: E731
        rows.append([s2, s3, fmt("mmmu"), fmt("mmmu_multi"), f"{pm:.2f}", f"{pmm:.2f}"])
    seeds = data.get("seeds", [])
    return (f"Toy world, {len(seeds)} seeds (mean ± standard deviation).\n\n"
            + _md(["stage 2", "stage 3", "MMMU", "MMMU Multi", "paper: MMMU", "paper: MMMU Multi"], rows))
