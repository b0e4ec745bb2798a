"""`make demo`: materialise the whole toy pipeline into the local Dagster instance, then say where it is.

Runs in-process against $DAGSTER_HOME, so every materialisation (metadata, data versions, checks)
shows up in the UI afterwards (`make ui`). Unpartitioned assets run first in one run, then the
partitioned ones, one run per partition (a language, or a chunk of a language), as a backfill would.
"""
from __future__ import annotations

import sys
import time

import dagster as dg

from assets.translation import partition_of
from definitions import defs
from pipeline.config import load_profile

QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def main() -> int:
    profile = load_profile()
    instance = dg.DagsterInstance.get()
    graph = defs.resolve_asset_graph()
    job = defs.resolve_implicit_global_asset_job_def()
    keys = graph.get_all_asset_keys()
    plain = [k for k in keys if not graph.get(k).is_partitioned]
    # assets that share a partitioning (languages, or chunks x languages) run together, one run per key
    groups: dict[tuple[str, ...], list[dg.AssetKey]] = {}
    for k in sorted(set(keys) - set(plain)):
        groups.setdefault(tuple(graph.get(k).partitions_def.get_partition_keys()), []).append(k)
    todo = [(lang, key, assets) for lang in profile.languages for part_keys, assets in groups.items()
            for key in part_keys if partition_of(key).lang == lang]
    started = time.perf_counter()
    print(f"profile {profile.name}: {len(plain)} assets, then {len(todo)} partition runs "
          f"({len(keys) - len(plain)} assets, {len(profile.languages)} languages)", flush=True)
    runs = [job.execute_in_process(run_config=QUIET, instance=instance, asset_selection=plain, raise_on_error=False)]
    for lang, key, assets in todo if runs[0].success else []:
        print(f"--- translating into {lang}: partition {key} of {', '.join(a.to_user_string() for a in assets)}",
              flush=True)
        runs.append(job.execute_in_process(run_config=QUIET, instance=instance, asset_selection=assets,
                                           partition_key=key, raise_on_error=False))
    if not all(r.success for r in runs):
        print("the demo failed; see the errors above, or open the run in the UI with `make ui`", file=sys.stderr)
        return 1
    _summary(runs, time.perf_counter() - started)
    return 0


def _value(md, key):
    return md[key].value if key in md else None


def _summary(runs, seconds: float) -> None:
    lake = defs.resources["lake"].get()
    print(f"\ndone in {seconds:.0f}s. Results are under {lake.root}:")
    for e in runs[0].get_asset_materialization_events():
        md = e.materialization.metadata
        kept, quarantined = _value(md, "rows_kept"), _value(md, "rows_quarantined")
        line = f"{kept} rows kept, {quarantined} quarantined" if kept is not None else ""
        if "chrf_min_eng_to_x" in md:
            line = f"held-out chrF (eng->X) min {md['chrf_min_eng_to_x'].value:.1f}"
        print(f"  {e.materialization.asset_key.to_user_string():<28} {line}")
    totals: dict[str, list] = {}
    for run in runs[1:]:
        for e in run.get_asset_materialization_events():
            md = e.materialization.metadata
            t = totals.setdefault(e.materialization.asset_key.to_user_string(), [0, 0, 0, []])
            t[0] += 1
            t[1] += _value(md, "model_calls") or 0
            t[2] += _value(md, "cache_hits") or 0
            if "chrf_vs_original" in md:
                t[3].append(md["chrf_vs_original"].value)
    for name, (parts, calls, hits, chrf) in sorted(totals.items()):
        extra = f", back-translation chrF {sum(chrf) / len(chrf):.1f}" if chrf else f", {calls} model calls, {hits} memory hits"
        print(f"  {name:<28} {parts} partitions{extra}")
    failed = [c for r in runs for c in r.get_asset_check_evaluations() if not c.passed]
    print(f"  asset checks: {sum(len(r.get_asset_check_evaluations()) for r in runs)} run, {len(failed)} failed"
          + "".join(f"\n    - {c.asset_key.to_user_string()}/{c.check_name}" for c in failed[:10]))
    print("\nOpen the Dagster UI with `make ui` (http://127.0.0.1:3000) to browse assets, metadata and checks.")


if __name__ == "__main__":
    sys.exit(main())
