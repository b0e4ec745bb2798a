"""Small helpers that turn pipeline stats into Dagster metadata (one place, so every asset looks alike)."""
from __future__ import annotations

import hashlib
import json
from typing import Any

import dagster as dg

from pipeline.stats import StepResult


def md_table(rows: list[dict[str, Any]]) -> dg.MetadataValue:
    if not rows:
        return dg.MetadataValue.md("_no rows_")
    cols = list(rows[0])
    esc = lambda v: str(v).replace("|", "\\|").replace("\n", " ⏎ ")  # noqa: E731
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(esc(r.get(c, "")) for c in cols) + " |" for r in rows]
    return dg.MetadataValue.md("\n".join(lines))


def stats_metadata(stats: dict[str, Any]) -> dict[str, Any]:
    """Numbers as numbers, dicts as JSON, so the UI can plot the former."""
    out: dict[str, Any] = {}
    for k, v in stats.items():
        out[k] = dg.MetadataValue.json(v) if isinstance(v, (dict, list)) else v
    return out


def step_metadata(result: StepResult, **extra: Any) -> dict[str, Any]:
    """The one rendering of a step's result: its stats, where it wrote, how much, and a sample."""
    md = stats_metadata(result.stats.to_dict())
    md.update(path=result.path, rows_written=result.manifest.total_rows, bytes=result.manifest.total_bytes)
    if result.stats.sample:
        md["sample"] = md_table(result.stats.sample)
    md.update(stats_metadata(extra))
    return md


def materialize_result(result: StepResult, **extra: Any) -> dg.MaterializeResult:
    """The step's metadata, with the manifest's content digest as the data version."""
    return dg.MaterializeResult(metadata=step_metadata(result, **extra),
                                data_version=dg.DataVersion(result.data_version))


def code_version(base: str, *settings: Any) -> str:
    """An asset's code version: its code's own version plus a hash of the profile settings it reads, so
    editing the profile makes exactly the assets that read the edited section stale (a profile is data,
    and Dagster only compares the code and data versions it has recorded)."""
    blob = json.dumps([s.model_dump(mode="json") if hasattr(s, "model_dump") else s for s in settings],
                      sort_keys=True, default=str)
    return f"{base}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


def accounting_check(asset: str, folder) -> dg.AssetCheckResult:
    """`rows_accounted`: kept + quarantined + dropped = read, and every file matches its manifest."""
    from pipeline.lake import Manifest, sha256_file

    x = (manifest := Manifest.read(folder)).extra
    balanced = x["rows_in"] == x["rows_kept"] + x["rows_quarantined"] + x["rows_dropped"]
    corrupt = [f.path for f in manifest.files if sha256_file(folder / f.path) != f.sha256]
    return dg.AssetCheckResult(
        check_name="rows_accounted", asset_key=asset, passed=balanced and not corrupt,
        metadata={k: x[k] for k in ("rows_in", "rows_kept", "rows_dropped", "rows_quarantined")}
        | {"files_not_matching_manifest": len(corrupt)})
