"""Does cost grow only with new work? Raw ingest, a first translation of one partition and an unchanged
re-run, as the toy corpora grow 1x, 10x, 100x, 1000x (`toy_world.scale`: 120 to 120k LLaVA rows).

    python bench/scaling.py --model lake/toy/models/nllb/ct2 [--sizes 1 10 100 1000] [--unique-sizes 1 10 100]

Toy sentences repeat heavily (a few hundred templates), unlike real answers, so the translation memory
makes a first run cheap at any size; the `unique` variant (`toy_world.unique_texts`) gives every answer
a sentence of its own, so the model has real work that grows with the rows. Each phase runs in its own
process (its peak RSS is its own): ingest of `llava_instruct`; a first translation of chunk 0 of 2 into
French with the asset's quality checks; the same partition again, unchanged. Writes
bench/results/scaling.json and bench/results/scaling.png (seconds per 1k rows against the size).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _profile(work: Path, scale: int, unique: bool):
    from pipeline.config import load_profile

    base = load_profile(ROOT / "configs" / "toy.yaml")
    toy = base.toy_world.model_copy(update={"scale": scale, "unique_texts": unique, "palo_rows": 1,
                                            "cambrian_rows": 1, "bad_rows": False})
    return base.model_copy(update={"lake_root": str(work), "toy_world": toy})


def phase(name: str, work: Path, scale: int, unique: bool) -> dict:
    """One phase, in this process: returns its numbers (peak RSS of this process included)."""
    from pipeline.lake import Lake

    profile, lake = _profile(work, scale, unique), Lake.at(work)
    started = time.perf_counter()
    out: dict = {}
    if name == "world":
        from pipeline.toy.world import build_world

        build_world(lake.toy_world().path, profile.toy_world, profile.languages)
    elif name == "ingest":
        from pipeline.raw.ingest import ingest_source

        r = ingest_source("llava_instruct", profile, lake, log=lambda _: None)
        out = {"rows": r.stats.rows_in, "input_mb": round(os.path.getsize(
            lake.expand(profile.sources.llava_instruct.path)) / 1e6, 1)}
    else:  # translate: the asset's work for partition 000|fra_Latn
        from pipeline.translation.run import Engines, translate_partition

        engines = Engines(profile.translation, lake)
        part = translate_partition("llava_instruct", "fra_Latn", lake, engines, 0, 2, log=lambda _: None)
        s = part.result.stats
        out = {"rows": s.rows_in, "segments_unique": s.counters.get("segments_unique", 0),
               "model_calls": s.model_calls, "model_seconds": round(s.counters.get("model_seconds", 0.0), 2),
               "checks_judged": s.counters.get("checks_judged", 0), "reused": s.counters.get("reused", 0)}
    out.update(phase=name, seconds=round(time.perf_counter() - started, 2),
               peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
    return out


def run_phase(name: str, work: Path, scale: int, unique: bool) -> dict:
    cmd = [sys.executable, __file__, "--phase", name, "--work", str(work), "--scale", str(scale)]
    cmd += ["--unique"] if unique else []
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{name} at {scale}x failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, help="a converted toy NLLB (CTranslate2 folder)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 100, 1000])
    ap.add_argument("--unique-sizes", type=int, nargs="*", default=[1, 10, 100])
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--scale", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--unique", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args.work, args.scale, args.unique)))
        return 0
    if not args.model or not (args.model / "model.bin").is_file():
        ap.error("--model must name a converted NLLB folder (run `make demo` first: lake/toy/models/nllb/ct2)")
    results = []
    runs = [(s, False) for s in args.sizes] + [(s, True) for s in args.unique_sizes]
    for scale, unique in runs:
        with tempfile.TemporaryDirectory(prefix="scaling-") as tmp:
            work = Path(tmp)
            (work / "models" / "nllb").mkdir(parents=True)
            os.symlink(args.model.resolve(), work / "models" / "nllb" / "ct2")
            run_phase("world", work, scale, unique)
            row = {"scale": scale, "variant": "unique" if unique else "repeated"}
            for name in ("ingest", "translate", "rerun"):
                r = run_phase("translate" if name == "rerun" else name, work, scale, unique)
                row[name] = {k: v for k, v in r.items() if k != "phase"}
            row["rerun_over_first"] = round(row["rerun"]["seconds"] / row["translate"]["seconds"], 3)
            results.append(row)
            t, i, r = row["translate"], row["ingest"], row["rerun"]
            print(f"{row['variant']:>8} {scale:>5}x: ingest {i['rows']} rows {i['seconds']}s {i['peak_rss_mb']} MB | "
                  f"first {t['rows']} rows {t['seconds']}s ({t['model_calls']} model calls) {t['peak_rss_mb']} MB | "
                  f"re-run {r['seconds']}s ({r['model_calls']} calls, {r['checks_judged']} judged) "
                  f"= {row['rerun_over_first']:.1%}", flush=True)
    out = ROOT / "bench" / "results" / "scaling.json"
    out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "results": results}, indent=1) + "\n")
    _plot(results, out.with_suffix(".png"))
    return 0


def _plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for variant in ("repeated", "unique"):
        rows = [r for r in results if r["variant"] == variant]
        if not rows:
            continue
        x = [r["translate"]["rows"] for r in rows]
        for phase, style in (("ingest", ":"), ("translate", "-"), ("rerun", "--")):
            per_k = [1000 * r[phase]["seconds"] / max(1, r[phase]["rows"]) for r in rows]
            ax.plot(x, per_k, style, marker="o", label=f"{phase} ({variant})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rows in the partition")
    ax.set_ylabel("seconds per 1k rows")
    ax.set_title("cost per row as the toy corpora grow")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
