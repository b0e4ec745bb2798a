"""WIT's images: downloaded once for every language with the project's img2dataset downloader, then read
back by URL.

Why once and not per language: WIT shows the same image on the pages of many languages (the toy WIT
reuses its scenes too), so per-language downloads would fetch an image up to eleven times and start
eleven downloaders; one unpartitioned download of the unique URLs feeds every language partition.

`fetch_images` writes, under `wit/images/`: `urls.parquet` (the unique image URLs of raw WIT),
`images/*.tar` (webdataset shards, resumable: img2dataset's incremental mode in a staging folder named
after the list), `rows.parquet` (key, url, sha256 of what was downloaded), `quarantine.jsonl` (URLs
that failed, with img2dataset's error) and `manifest.json`. An unchanged URL list is not downloaded
again (the manifest records the list's digest); delete `wit/images/manifest.json` to retry failures.

`ImageStore(folder)` answers, per URL, either the image bytes or why there are none.
"""
from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path
from typing import Callable

import pandas as pd

from pipeline.config import CaptionSource, DownloadSettings
from pipeline.lake import Lake, Manifest, build_manifest, sha256_file
from pipeline.raw.download import download_captions
from pipeline.rows import read_jsonl, read_parquet
from pipeline.stats import StepResult, StepStats
from pipeline.translation.nllb import local_path

Log = Callable[[str], None]
URL_LIST = "urls.parquet"


def images_dir(lake: Lake):
    return lake.path("wit", "images")


def _url_list_digest(urls: list[str]) -> str:
    return hashlib.sha256("\n".join(urls).encode()).hexdigest()[:16]


def _reusable(folder: Path, digest: str) -> Manifest | None:
    """The manifest of a finished download of the same URL list whose files are intact, else None."""
    try:
        manifest = Manifest.read(folder)
    except (OSError, ValueError, KeyError):
        return None
    if manifest.extra.get("url_list_digest") != digest:
        return None
    if any(not (folder / f.path).is_file() or sha256_file(folder / f.path) != f.sha256 for f in manifest.files):
        return None
    return manifest


def fetch_images(lake: Lake, settings: DownloadSettings, mirror: dict[str, str] | None = None,
                 log: Log = print) -> StepResult:
    """Download the image of every unique image URL of raw WIT into `wit/images/` (entry function of
    the `wit_images` asset). `mirror` rewrites URL prefixes (the toy profile's loopback server)."""
    stats = StepStats("wit_images", unit="images")
    out = images_dir(lake)
    folder = local_path(out, "wit/images")
    folder.mkdir(parents=True, exist_ok=True)
    with stats.timed():
        rows = read_parquet(lake.raw("wit", "rows.parquet"))
        urls = sorted({r["image_url"] for r in rows if r.get("image_url")})
        digest = _url_list_digest(urls)
        manifest = _reusable(folder, digest)
        if manifest is not None:
            x = manifest.extra
            stats.rows_in, stats.rows_kept, stats.rows_quarantined = x["rows_in"], x["rows_kept"], x["rows_quarantined"]
            stats.reasons.update(x.get("reasons", {}))
            stats.add(reused=1)
            log(f"wit_images: {len(urls)} URLs unchanged since the last download; nothing fetched")
            return StepResult(str(out), manifest, stats)
        url_file = folder / URL_LIST
        pd.DataFrame({"url": urls, "caption": [""] * len(urls)}).to_parquet(url_file, index=False)
        log(f"wit_images: downloading {len(urls)} unique image URLs of {len(rows)} WIT rows")
        d = download_captions(CaptionSource(url_list=str(url_file)), str(url_file), folder, settings, mirror,
                              "wit_images", row_id=lambda r: r["url"])
    accounted = d.result.to_stats("wit_images")
    stats.rows_in, stats.rows_kept, stats.rows_quarantined = accounted.rows_in, accounted.rows_kept, accounted.rows_quarantined
    stats.reasons.update(accounted.reasons)
    stats.items = stats.rows_kept
    stats.add(download_seconds=d.seconds, reused=0)
    files = {**d.files, URL_LIST: len(urls)}
    manifest = build_manifest(out, files, extra={**stats.to_dict(), "content_digest": d.content_digest,
                                                 "url_list_digest": digest})
    log(f"wit_images: {stats.rows_kept} of {stats.rows_in} images downloaded, {stats.rows_quarantined} failed "
        f"in {stats.seconds:.1f}s")
    return StepResult(str(out), manifest, stats)


class ImageUnavailable(LookupError):
    """No image for a URL: the download failed, or the URL was never downloaded."""


class ImageStore:
    """The downloaded WIT images, by URL (as raw WIT names it)."""

    def __init__(self, folder: str | Path):
        self.folder = local_path(folder, "wit/images")
        if not (self.folder / "rows.parquet").is_file():
            raise FileNotFoundError(f"no downloaded WIT images in {self.folder}; materialise the wit_images asset first")
        self._key = {r["url"]: str(r["key"]) for r in read_parquet(self.folder / "rows.parquet")}
        qfile = self.folder / "quarantine.jsonl"
        self._failed = {q["raw"]: q["reason"] for q in read_jsonl(qfile)} if qfile.is_file() else {}
        self._index: dict[str, tuple[Path, int, int]] | None = None
        self._open: dict[Path, object] = {}  # shard -> open file, for the store's lifetime

    def __enter__(self) -> "ImageStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for f in self._open.values():
            f.close()
        self._open.clear()

    def _members(self) -> dict[str, tuple[Path, int, int]]:
        if self._index is None:
            index = {}
            for tar in sorted((self.folder / "images").glob("*.tar")):
                with tarfile.open(tar) as tf:
                    for m in tf.getmembers():
                        if m.isfile() and m.name.endswith(".jpg"):
                            index[m.name[:-4]] = (tar, m.offset_data, m.size)
            self._index = index
        return self._index

    def missing_reason(self, url: str) -> str | None:
        """None when the image is there; else why not (the downloader's error, or never downloaded)."""
        if url in self._key:
            return None
        failed = self._failed.get(url) or self._failed.get(url[:500])  # quarantine records cut raw at 500
        if failed:
            return f"image not fetched: {failed}"
        return "image not fetched: URL not in the last download (re-materialise wit_images)"

    def read(self, url: str) -> bytes:
        reason = self.missing_reason(url)
        if reason:
            raise ImageUnavailable(reason)
        try:
            tar, offset, size = self._members()[self._key[url]]
        except KeyError:
            raise ImageUnavailable(f"image not fetched: {url} is listed but not in the shards of {self.folder}") from None
        f = self._open.get(tar)
        if f is None:
            f = self._open[tar] = open(tar, "rb")
        f.seek(offset)
        return f.read(size)

