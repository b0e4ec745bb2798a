"""The raw step's entry function: read, validate and publish one source under `raw/<name>/`.

`ingest_source()` is what the raw assets and `python -m pipeline.raw` call. It writes the kept rows
(`rows.parquet`, every row with its `_bucket` so later steps read one chunk at a time), the
quarantined ones (`quarantine.jsonl`, with file, row and reason) and `manifest.json`, and returns a
`StepResult` whose stats account for every input row.
"""
from __future__ import annotations

import time
from typing import Any, Callable

from pipeline.config import Profile
from pipeline.lake import Lake, build_manifest, write_jsonl_atomic
from pipeline.raw.download import download_captions
from pipeline.raw.mmmu import IMAGE_FIELDS
from pipeline.raw.sources import source
from pipeline.rows import write_parquet
from pipeline.stats import StepResult

SAMPLE_ROWS = 5


def _sample(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A few rows for the UI: image bytes left out, long values cut."""
    def cell(v: Any) -> Any:
        return v if isinstance(v, (int, float)) else str(v)[:200]
    return [{k: cell(v) for k, v in row.items() if k not in IMAGE_FIELDS} for row in rows[:SAMPLE_ROWS]]


def ingest_source(name: str, profile: Profile, lake: Lake, mirror: dict[str, str] | None = None,
                  log: Callable[[str], None] = print) -> StepResult:
    """Read, validate and publish one raw source.

    `mirror` rewrites URL prefixes before downloading (the toy profile serves its images from a
    loopback server: {"http://toy-images.local": "http://127.0.0.1:PORT"}); failures still name the
    URL as the list wrote it."""
    spec = source(name)
    settings = getattr(profile.sources, name)
    out = lake.raw(name)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    extra: dict[str, Any] = {}
    if spec.layout == "captions":
        d = download_captions(settings, lake.expand(settings.url_list), out, profile.download, mirror, name,
                              row_id=spec.row_id)
        result, files = d.result, d.files
        extra = {"content_digest": d.content_digest, "shards": sum(1 for f in files if f.startswith("images/"))}
    else:
        result = spec.read(settings, profile, lake)
        write_parquet(out / "rows.parquet", result.kept, row_id=spec.row_id, documents=spec.layout == "documents")
        write_jsonl_atomic(out / "quarantine.jsonl", (q.to_dict() for q in result.quarantined))
        files = {"rows.parquet": len(result.kept), "quarantine.jsonl": len(result.quarantined)}
    stats = result.to_stats(name)
    stats.seconds = time.perf_counter() - started
    stats.sample = _sample(result.kept)
    manifest = build_manifest(out, files, extra={**stats.to_dict(), **extra})
    log(f"{name}: {stats.rows_kept} of {stats.rows_in} rows kept, {stats.rows_quarantined} quarantined "
        f"in {stats.seconds:.1f}s")
    return StepResult(str(out), manifest, stats)
