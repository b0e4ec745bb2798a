"""The toy Table 2: every row of `configs/ablations/` trained and evaluated over several seeds.

    python -m pipeline.evaluate table2 [--seeds 0 1 2] [--rows table2_row2_ci table2_row3_ci_m]

Each row is a profile overlay that changes the stage-2 (and stage-3) mixtures. All rows start from the
pipeline's stage 1 (`training/stage1`, trained by `make demo`), train stage 2 (and 3 where the row has one)
into `ablations/<row>/seed<k>/training/`, and evaluate the last stage on MMMU (English) and MMMU Multi
(the ten languages). Every run is cached like the pipeline's own (an unchanged row trains and generates
nothing). The result, mean and standard deviation over the seeds, goes to `ablations/table2.json` and
`ablations/table2.md`; the report asset shows it beside the paper's numbers.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from pipeline.config import REPO_ROOT, Profile, load_overlay, load_profile
from pipeline.evaluate.report import PAPER_TABLE2, TABLE2_FILE
from pipeline.evaluate.run import SOURCE_LANG, Generator, evaluate_partition
from pipeline.lake import Lake, write_text_atomic
from pipeline.training.run import run_stage

ABLATIONS = REPO_ROOT / "configs" / "ablations"
DEFAULT_SEEDS = (0, 1, 2)


def ablation_rows() -> list[Path]:
    return sorted(ABLATIONS.glob("table2_row*.yaml"))


def run_row(base: Profile, lake: Lake, overlay: Path, seed: int, log=print) -> dict[str, Any]:
    """Train one row with one seed (stage 2, then 3 if the row has it) and evaluate its last stage."""
    profile = load_overlay(overlay, base)
    runs = f"ablations/{overlay.stem}/seed{seed}"
    stages = [n for n in (2, 3) if f"stage{n}" in profile.stages]
    for n in stages:
        res = run_stage(profile, lake, n, runs=f"{runs}/training", prev_runs="training" if n == 2 else None,
                        seed=base.model.stages[n].seed + seed, progress=False)
        log(f"{overlay.stem} seed {seed} stage {n}: loss {res.stats.counters.get('loss_first', 0):.3f} -> "
            f"{res.stats.counters.get('loss_last', 0):.3f}{' (cached)' if res.stats.counters.get('cached') else ''}")
    last = stages[-1]
    model: list[Generator] = []

    def generator() -> Generator:
        if not model:
            model.append(Generator(profile, lake, last, runs=f"{runs}/training"))
        return model[0]

    acc = {}
    for part in [SOURCE_LANG, *[lang for lang in profile.languages if lang != SOURCE_LANG]]:
        res = evaluate_partition(profile, lake, last, part, generator=generator, log=lambda *_: None,
                                 runs=f"{runs}/training", out_dir=f"{runs}/evaluation")
        acc[part] = res.stats.counters["accuracy"]
    multi = statistics.fmean(v for k, v in acc.items() if k != SOURCE_LANG)
    log(f"{overlay.stem} seed {seed}: MMMU {100 * acc[SOURCE_LANG]:.2f}, MMMU Multi {100 * multi:.2f}")
    return {"mmmu": acc[SOURCE_LANG], "mmmu_multi": multi, "by_language": acc}


def _spread(values: list[float]) -> dict[str, Any]:
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "values": values}


def run_table2(base: Profile | None = None, seeds=DEFAULT_SEEDS, rows: list[str] | None = None,
               log=print) -> dict[str, Any]:
    base = base or load_profile()
    lake = Lake.at(base.lake_root)
    overlays = [p for p in ablation_rows() if rows is None or p.stem in rows]
    out: dict[str, Any] = {"profile": base.name, "seeds": list(seeds), "rows": {}}
    path = Path(lake.path(*TABLE2_FILE).path)
    if path.is_file():  # a run of some rows keeps the others' results (when they used the same seeds)
        earlier = json.loads(path.read_text())
        if earlier.get("seeds") == list(seeds) and earlier.get("profile") == base.name:
            out["rows"] = {k: v for k, v in earlier.get("rows", {}).items() if k in {o.stem for o in ablation_rows()}}
    for overlay in overlays:
        runs = [run_row(base, lake, overlay, seed, log) for seed in seeds]
        out["rows"][overlay.stem] = {k: _spread([r[k] for r in runs]) for k in ("mmmu", "mmmu_multi")}
        out["rows"][overlay.stem]["runs"] = runs
    out["rows"] = {o.stem: out["rows"][o.stem] for o in ablation_rows() if o.stem in out["rows"]}  # table order
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(out, indent=1))
    write_text_atomic(path.with_suffix(".md"), markdown(out) + "\n")
    return out


def markdown(result: dict[str, Any]) -> str:
    lines = [f"Toy Table 2 ({result['profile']}), seeds {result['seeds']}: accuracy in %, mean ± standard deviation",
             "", "| row | stage 2 | stage 3 | MMMU | MMMU Multi | paper: MMMU | paper: MMMU Multi |",
             "|---|---|---|---|---|---|---|"]
    for row, got in result["rows"].items():
        s2, s3, pm, pmm = PAPER_TABLE2.get(row, ("?", "?", float("nan"), float("nan")))
        fmt = lambda k: f"{100 * got[k]['mean']:.2f} ± {100 * got[k]['std']:.2f}"  # noqa: E731
        lines.append(f"| {row} | {s2} | {s3} | {fmt('mmmu')} | {fmt('mmmu_multi')} | {pm:.2f} | {pmm:.2f} |")
    return "\n".join(lines)
