"""`make demo`: materialise the whole toy pipeline into the local Dagster instance, then say where it is.

Runs in-process against $DAGSTER_HOME, so every materialisation (metadata, data versions, checks)
shows up in the UI afterwards (`make ui`).
"""
from __future__ import annotations

import sys
import time

import dagster as dg

from definitions import defs
from pipeline.config import load_profile


def main() -> int:
    profile = load_profile()
    instance = dg.DagsterInstance.get()
    graph = defs.resolve_asset_graph()
    started = time.perf_counter()
    unpartitioned = [k for k in graph.get_all_asset_keys() if not graph.get(k).is_partitioned]
    print(f"profile {profile.name}: materialising {len(unpartitioned)} assets ...", flush=True)
    job = defs.resolve_implicit_global_asset_job_def()
    quiet = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    result = job.execute_in_process(run_config=quiet, instance=instance, asset_selection=unpartitioned,
                                    raise_on_error=False)
    if not result.success:
        print("the demo failed; see the errors above, or open the run in the UI with `make ui`", file=sys.stderr)
        return 1
    lake = defs.resources["lake"].get()
    print(f"\ndone in {time.perf_counter() - started:.0f}s. Results are under {lake.root}:")
    for mat in result.get_asset_materialization_events():
        m = mat.materialization
        rows = m.metadata.get("rows_kept")
        q = m.metadata.get("rows_quarantined")
        extra = f"{rows.value} rows kept, {q.value} quarantined" if rows and q else ""
        print(f"  {m.asset_key.to_user_string():<16} {extra}")
    print("\nOpen the Dagster UI with `make ui` (http://127.0.0.1:3000) to browse assets, metadata and checks.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
