"""The img2dataset downloader against the loopback toy server, broken URLs included."""
from __future__ import annotations

import io
import json
import tarfile
import urllib.error
import urllib.request

import pandas as pd
import pytest
from PIL import Image

from pipeline.config import CaptionSource
from pipeline.raw.download import download_captions
from pipeline.rows import read_parquet
from pipeline.toy.image_server import TOY_HOST, serve


def test_server_serves_images_and_each_kind_of_breakage(toy_lake):
    _, lake = toy_lake
    with serve(lake.toy_world("www"), stall_s=1.5) as base:
        ok = urllib.request.urlopen(f"{base}/scenes/00001.jpg", timeout=5).read()
        assert Image.open(io.BytesIO(ok)).size == (224, 224)
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(f"{base}/broken/404/00001.jpg", timeout=5)
        cut = urllib.request.urlopen(f"{base}/broken/truncated/00001.jpg", timeout=5).read()
        assert len(cut) == 160 and ok.startswith(cut)
        with pytest.raises(OSError):  # the server stalls past the client's time-out
            urllib.request.urlopen(f"{base}/broken/timeout/00001.jpg", timeout=0.5).read()


def test_download_accounts_for_every_url(toy_lake, tmp_path):
    profile, lake = toy_lake
    urls = [f"{TOY_HOST}/scenes/{i:05d}.jpg" for i in range(5)]
    urls += [f"{TOY_HOST}/broken/404/00001.jpg", f"{TOY_HOST}/broken/truncated/00002.jpg",
             f"{TOY_HOST}/broken/timeout/00003.jpg"]
    url_list = tmp_path / "urls.parquet"
    pd.DataFrame({"url": urls, "caption": [f"caption {i}" for i in range(len(urls))]}).to_parquet(url_list)
    out = tmp_path / "out"
    with serve(lake.toy_world("www"), stall_s=profile.download.timeout_s + 2) as base:
        d = download_captions(CaptionSource(url_list=str(url_list)), str(url_list), out, profile.download,
                              {TOY_HOST: base}, "test")
    stats = d.result.to_stats("test")
    assert stats.rows_in == 8 and stats.rows_kept == 5 and stats.rows_quarantined == 3
    assert set(stats.reasons) == {"download failed (http 404)", "image undecodable",
                                                "download failed (timeout)"}
    # failures name the URL as the list wrote it, not the loopback mirror
    assert all(q.raw.startswith(TOY_HOST) for q in d.result.quarantined)
    # the shards are webdataset: jpg + caption per sample, as MiniGPT's stage 1 reads them
    tars = sorted((out / "images").glob("*.tar"))
    with tarfile.open(tars[0]) as tf:
        names = tf.getnames()
        key = next(n for n in names if n.endswith(".jpg"))[:-4]
        assert f"{key}.txt" in names and f"{key}.json" in names
        assert json.load(tf.extractfile(f"{key}.json"))["caption"].startswith("caption ")
    assert d.files["rows.parquet"] == 5 and len(read_parquet(out / "rows.parquet")) == 5
    assert len(list(out.glob(".staging-*"))) == 0
