"""Image-caption URL lists -> webdataset shards (the MiniGPT stage-1 format), with img2dataset.

Every URL is accounted for: a sample in a shard, or a quarantine record with img2dataset's error
(404, time-out, undecodable image...). Downloads go to a staging folder named after the URL list's
content, so a killed run resumes (img2dataset's incremental mode skips finished shards); the shards
are published under `images/` only when the whole list is done.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from pipeline.config import CaptionSource, DownloadSettings
from pipeline.raw.accounting import ReadResult, SourceError
from pipeline.lake import write_jsonl_atomic
from pipeline.rows import write_parquet

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # img2dataset imports albumentations, which phones home


@dataclass
class DownloadResult:
    result: ReadResult
    files: dict[str, int | None]  # what was written under out_dir: path -> rows (None for shards)
    content_digest: str  # of images, captions and failures: tar headers carry write times
    seconds: float


def _read_url_list(src: CaptionSource, path: str) -> pd.DataFrame:
    readers = {
        "parquet": pd.read_parquet,
        "csv": pd.read_csv,
        "tsv": lambda p: pd.read_csv(p, sep="\t"),
        "json": pd.read_json,
        "jsonl": lambda p: pd.read_json(p, lines=True),
    }
    try:
        df = readers[src.input_format](path)
    except FileNotFoundError:
        raise SourceError(f"URL list not found: {path} (check url_list in the profile)") from None
    missing = [c for c in (src.url_col, src.caption_col) if c not in df.columns]
    if missing:
        raise SourceError(f"URL list {path} lacks column(s) {missing}; it has {list(df.columns)}")
    return df[[src.url_col, src.caption_col]].rename(columns={src.url_col: "url", src.caption_col: "caption"})


def _failure_kind(error: str) -> str:
    """Group img2dataset's error messages into a few kinds for the metadata counts."""
    e = error.lower()
    if "http error" in e:
        return "download failed (http " + e.split("http error", 1)[1].strip().split(":")[0] + ")"
    if "timed out" in e or "timeout" in e:
        return "download failed (timeout)"
    if "decod" in e or "resize" in e:
        return "image undecodable"
    return "download failed"


def _content_digest(tars: list[Path], result: ReadResult) -> str:
    """Hash of what was downloaded (images and captions by key) and of what failed, not of tar headers
    or sample JSON, which carry write times and the mirror's port."""
    h = hashlib.sha256()
    for q in result.quarantined:
        h.update(f"{q.row}\0{q.raw}\0".encode())
    for t in tars:
        with tarfile.open(t) as tf:
            for m in sorted(tf.getmembers(), key=lambda m: m.name):
                if m.isfile() and m.name.endswith((".jpg", ".txt")):
                    h.update(m.name.encode() + b"\0" + hashlib.sha256(tf.extractfile(m).read()).digest())
    return h.hexdigest()


def download_captions(
    src: CaptionSource,
    url_list: str,
    out_dir: str | os.PathLike,
    settings: DownloadSettings,
    mirror: dict[str, str] | None = None,
    source_name: str = "captions",
    row_id=lambda r: str(r["key"]),
) -> DownloadResult:
    """Download a URL list into `out_dir/images/*.tar` and the kept captions into `out_dir/rows.parquet`;
    failures go to `out_dir/quarantine.jsonl`. The caller writes the manifest."""
    from img2dataset import download  # heavy import, only when downloading

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    df = _read_url_list(src, url_list)
    # staging is keyed by the list as written (before any mirror rewrite), so a re-run resumes it
    list_hash = hashlib.sha256(pd.util.hash_pandas_object(df, index=True).values.tobytes()).hexdigest()[:12]
    for old, new in (mirror or {}).items():
        df["url"] = df["url"].str.replace(old, new, regex=False)
    staging = out / f".staging-{list_hash}"
    for stale in out.glob(".staging-*"):
        if stale != staging:
            shutil.rmtree(stale)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        input_file = Path(tmp) / "urls.parquet"
        df.to_parquet(input_file, index=False)
        download(
            url_list=str(input_file),
            input_format="parquet",
            url_col="url",
            caption_col="caption",
            output_folder=str(staging),
            output_format="webdataset",
            image_size=settings.image_size,
            resize_mode="center_crop",
            processes_count=settings.processes,
            thread_count=settings.threads,
            timeout=settings.timeout_s,
            retries=settings.retries,
            number_sample_per_shard=settings.shard_size,
            incremental_mode="incremental",
            enable_wandb=False,
            disallowed_header_directives=[],
            compute_hash="sha256",
        )
    seconds = time.perf_counter() - started

    status = pd.concat([pq.read_table(p).to_pandas() for p in sorted(staging.glob("*.parquet"))], ignore_index=True)
    if len(status) != len(df):
        raise RuntimeError(f"{source_name}: img2dataset reported {len(status)} of {len(df)} URLs; re-run to resume")
    result = ReadResult(source_name)
    for rec in status.sort_values("key").to_dict("records"):
        url, error = rec["url"], str(rec["error_message"])
        for old, new in (mirror or {}).items():  # report the URL as the list names it
            url, error = url.replace(new, old), error.replace(new, old)
        if rec["status"] == "success":
            result.keep({"key": rec["key"], "url": url, "caption": rec["caption"], "sha256": rec.get("sha256")})
        else:
            result.reject(Path(url_list).name, rec["key"], f"{_failure_kind(error)}: {error}", url, row_kind="key")

    # publish: the finished staging folder replaces images/ in one rename
    final = out / "images"
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)
    tars = sorted(final.glob("*.tar"))
    write_jsonl_atomic(out / "quarantine.jsonl", (q.to_dict() for q in result.quarantined))
    # the captions as a table beside the shards, for translation (bucketed by row id, so chunks read fast)
    write_parquet(out / "rows.parquet", result.kept, row_id=row_id)
    files: dict[str, int | None] = {f"images/{t.name}": None for t in tars}
    files["quarantine.jsonl"] = len(result.quarantined)
    files["rows.parquet"] = len(result.kept)
    return DownloadResult(result, files, _content_digest(tars, result), seconds)
