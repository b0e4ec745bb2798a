"""The shard reader against reading the same examples from the raw files: samples/s with image decoding.

    python bench/shard_reader.py [--rows 4000] [--scenes 240] [--reps 5] [--target-mb 4]

Builds a toy world in a temporary lake (LLaVA-Instruct conversations over JPEG scenes, the real formats),
ingests it, writes the `llava_instruct` shard set, then reads the same examples five ways, interleaved:

- `shards`: `pipeline.shards.reader.read_shard_set` (every file's sha256 checked) + PIL decode of each image;
- `shards_no_verify`: the same files opened with pyarrow directly (no hash) + PIL decode;
- `datasets`: `datasets.Dataset.from_file` over the same files + PIL decode;
- `raw_parquet`: the raw step's `rows.parquet` (JSON documents) + open each image file + PIL decode;
- `raw_json`: the corpus as published (one JSON list) + open each image file + PIL decode.

Decoding is `Image.open(...).convert("RGB")`. Samples/s is given by wall time and by this process's CPU
time (the latter is steadier on a machine shared with other jobs). Prints a table and writes bench/results/shard_reader.json.
Images are the toy's 224 px JPEGs (~5 KB) and every file is in the page cache after the first pass, so
this measures per-example overhead, not disk: on real COCO images (~160 KB, 640 px) decoding dominates.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyarrow as pa  # noqa: E402
from PIL import Image  # noqa: E402

from pipeline.config import load_profile  # noqa: E402
from pipeline.lake import Lake, safe_join  # noqa: E402
from pipeline.raw.conversations import has_image  # noqa: E402
from pipeline.raw.ingest import ingest_source  # noqa: E402
from pipeline.rows import read_parquet  # noqa: E402
from pipeline.shards.reader import read_manifest, read_shard_set, shard_files  # noqa: E402
from pipeline.shards.run import build_shards, shard_folder  # noqa: E402
from pipeline.toy.world import build_world  # noqa: E402


def decode(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB").size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=4000)
    ap.add_argument("--scenes", type=int, default=240)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--target-mb", type=float, default=4.0)
    args = ap.parse_args()

    load_start = os.getloadavg()[0]
    base = load_profile("configs/toy.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        toy = base.toy_world.model_copy(update={"scenes": args.scenes, "llava_rows": args.rows, "bad_rows": False})
        shards = base.shards.model_copy(update={"target_bytes": int(args.target_mb * 2**20), "batch_rows": 256})
        profile = base.model_copy(update={"lake_root": tmp, "toy_world": toy, "shards": shards})
        lake = Lake.at(tmp)
        build_world(lake.toy_world().path, toy, profile.languages)
        ingest_source("llava_instruct", profile, lake, log=lambda m: None)
        started = time.perf_counter()
        built = build_shards("llava_instruct", profile, lake, log=lambda m: None)
        write_s = time.perf_counter() - started
        folder = shard_folder(lake, "llava_instruct", "eng_Latn")
        files = shard_files(folder)
        image_root = lake.expand(profile.sources.llava_instruct.image_root)
        corpus = lake.expand(profile.sources.llava_instruct.path)

        def shards_verified() -> int:
            n = 0
            for row in read_shard_set(folder):
                if row["image"] is not None:
                    decode(row["image"])
                n += 1
            return n

        def shards_no_verify() -> int:
            n = 0
            for f in files:
                with pa.memory_map(f) as src:
                    for row in pa.ipc.open_stream(src).read_all().to_pylist():
                        if row["image"] is not None:
                            decode(row["image"])
                        n += 1
            return n

        def hf_datasets() -> int:
            import datasets

            n = 0
            for f in files:
                for row in datasets.Dataset.from_file(f):
                    if row["image"] is not None:
                        decode(row["image"])
                    n += 1
            return n

        def from_rows(rows) -> int:
            n = 0
            for row in rows:
                if has_image(row):
                    with open(safe_join(image_root, row["image"]).path, "rb") as fh:
                        decode(fh.read())
                n += 1
            return n

        def raw_parquet() -> int:
            return from_rows(read_parquet(lake.raw("llava_instruct", "rows.parquet")))

        def raw_json() -> int:
            with open(corpus, encoding="utf-8") as fh:
                return from_rows(json.load(fh))

        ways = {"shards": shards_verified, "shards_no_verify": shards_no_verify, "datasets": hf_datasets,
                "raw_parquet": raw_parquet, "raw_json": raw_json}
        counts = {name: fn() for name, fn in ways.items()}  # warm-up: page cache, lazy imports
        assert len(set(counts.values())) == 1, f"every way must read the same examples: {counts}"
        times: dict[str, list[float]] = {name: [] for name in ways}
        cpu: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(args.reps):  # interleaved, so load from other programs hits every way alike
            for name, fn in ways.items():
                t, c = time.perf_counter(), time.process_time()
                fn()
                times[name].append(time.perf_counter() - t)
                cpu[name].append(time.process_time() - c)
        n = counts["shards"]
        manifest = read_manifest(folder)
        images = sum(1 for r in read_shard_set(folder, columns=["image"]) if r["image"] is not None)

    results = {name: {"median_s": round(statistics.median(ts), 4), "samples_per_s": round(n / statistics.median(ts), 1),
                      "cpu_samples_per_s": round(n / statistics.median(cpu[name]), 1),
                      "runs_s": [round(t, 4) for t in ts]} for name, ts in times.items()}
    base_sps = results["raw_json"]["samples_per_s"]
    base_cpu = results["raw_json"]["cpu_samples_per_s"]
    print(f"{n} examples ({images} with an image) in {len(files)} shard files, "
          f"{manifest.total_bytes / 1e6:.1f} MB; written in {write_s:.2f}s ({n / write_s:.0f} examples/s)")
    print(f"{'way':<18}{'samples/s':>12}{'vs raw_json':>14}{'per CPU-s':>12}{'vs raw_json':>14}")
    for name, r in results.items():
        print(f"{name:<18}{r['samples_per_s']:>12.1f}{r['samples_per_s'] / base_sps:>13.2f}x"
              f"{r['cpu_samples_per_s']:>12.1f}{r['cpu_samples_per_s'] / base_cpu:>13.2f}x")
    out = Path(__file__).resolve().parent / "results" / "shard_reader.json"
    out.write_text(json.dumps({
        "date": time.strftime("%Y-%m-%d"), "examples": n, "with_image": images, "shard_files": len(files),
        "shard_bytes": manifest.total_bytes, "target_bytes": shards.target_bytes, "write_s": round(write_s, 3),
        "write_examples_per_s": round(n / write_s, 1), "reps": args.reps, "results": results,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "pyarrow": pa.__version__,
                    "load_avg_at_start": load_start, "load_avg_at_end": os.getloadavg()[0]},
        "build_stats": built.stats.to_dict(),
    }, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
