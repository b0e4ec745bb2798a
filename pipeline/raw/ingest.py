"""The raw step's entry function: read, validate and publish one source under `raw/<name>/`.

`ingest_source()` is what the raw assets and `python -m pipeline.raw` call. It writes the kept rows
(`rows.parquet`, every row with its `_bucket` so later steps read one chunk at a time), the
quarantined ones (`quarantine.jsonl`, with file, row and reason) and `manifest.json`, and returns a
`StepResult` whose stats account for every input row.

The reader's stream is consumed once, in bounded memory: kept rows go on to `write_parquet` as an
iterator, quarantined records are written to `quarantine.jsonl` as they come (both files under a
temporary name until the source is read to the end: a source that fails leaves the last good output
in place), and the counts and reasons are tallied on the way. The sample is the first kept rows.
"""
from __future__ import annotations

import json
import time
from typing import Any, Callable, Iterator

from pipeline.config import Profile
from pipeline.lake import Lake, atomic_open, build_manifest
from pipeline.raw.accounting import Quarantined, ReadResult, Stream, Tally
from pipeline.raw.download import download_captions
from pipeline.raw.mmmu import IMAGE_FIELDS
from pipeline.raw.sources import source
from pipeline.rows import write_parquet
from pipeline.stats import StepResult

SAMPLE_ROWS = 5
PROGRESS_EVERY = 1_000_000  # rows between progress lines in the log


def _sample(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A few rows for the UI: image bytes left out, long values cut."""
    def cell(v: Any) -> Any:
        return v if isinstance(v, (int, float)) else str(v)[:200]
    return [{k: cell(v) for k, v in row.items() if k not in IMAGE_FIELDS} for row in rows[:SAMPLE_ROWS]]


def _split(stream: Stream, tally: Tally, quarantine_file, sample: list, name: str,
           log: Callable[[str], None]) -> Iterator[dict[str, Any]]:
    """The kept rows of `stream`; quarantined records are written to `quarantine_file` on the way."""
    for item in stream:
        tally.add(item)
        if isinstance(item, Quarantined):
            line = json.dumps(item.to_dict(), ensure_ascii=False, sort_keys=True)
            quarantine_file.write(line.encode("utf-8") + b"\n")
        else:
            if len(sample) < SAMPLE_ROWS:
                sample.append(item)
            yield item
        if tally.read % PROGRESS_EVERY == 0:
            log(f"{name}: {tally.read} rows read, {tally.kept} kept, {tally.quarantined} quarantined so far")


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
        stats, sample = result.to_stats(name), result.kept[:SAMPLE_ROWS]
    else:
        stream = spec.read(settings, profile, lake)  # a source that cannot be read at all fails here
        tally, sample = Tally(name), []
        with atomic_open(out / "quarantine.jsonl", "wb") as qf:
            kept = write_parquet(out / "rows.parquet", _split(stream, tally, qf, sample, name, log),
                                 row_id=spec.row_id, documents=spec.layout == "documents")
        if kept != tally.kept:
            raise AssertionError(f"{name}: {tally.kept} rows kept but {kept} written")
        files = {"rows.parquet": tally.kept, "quarantine.jsonl": tally.quarantined}
        stats = tally.to_stats(name)
    stats.seconds = time.perf_counter() - started
    stats.sample = _sample(sample)
    manifest = build_manifest(out, files, extra={**stats.to_dict(), **extra})
    log(f"{name}: {stats.rows_kept} of {stats.rows_in} rows kept, {stats.rows_quarantined} quarantined "
        f"in {stats.seconds:.1f}s")
    return StepResult(str(out), manifest, stats)
