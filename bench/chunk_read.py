"""A chunk partition reads only its rows: time to load one chunk of a raw source, against the old way
(load every row, hash every id, keep the chunk's), as the dataset grows.

    python bench/chunk_read.py [--sizes 10000 100000 400000] [--chunks 64] [--reps 3]

Rows are LLaVA-style conversations (the `documents` layout of `pipeline.rows`), written once per size.
Prints a table and writes bench/results/chunk_read.json. Both ways run side by side in this process.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.rows import chunk_of, read_parquet, write_parquet  # noqa: E402


def make_rows(n: int) -> list[dict]:
    return [{"id": f"row-{i}", "image": f"coco/train2017/{i:012d}.jpg",
             "conversations": [{"from": "human", "value": f"<image>\nWhat is in picture {i}? Describe it briefly."},
                               {"from": "gpt", "value": f"A red circle at the top left, number {i}, on a white ground."}]}
            for i in range(n)]


def timed(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 400_000])
    ap.add_argument("--chunks", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            path = Path(tmp) / f"rows-{n}.parquet"
            write_parquet(path, make_rows(n), row_id=lambda r: r["id"], documents=True)

            def one_chunk():
                return read_parquet(path, 5, args.chunks)

            def whole_then_filter():
                return [r for r in read_parquet(path) if chunk_of(r["id"], args.chunks) == 5]

            assert [r["id"] for r in one_chunk()] == [r["id"] for r in whole_then_filter()]
            chunk_s, whole_s = timed(one_chunk, args.reps), timed(whole_then_filter, args.reps)
            results.append({"rows": n, "chunks": args.chunks, "rows_in_chunk": len(one_chunk()),
                            "file_mb": round(path.stat().st_size / 1e6, 1), "chunk_read_s": round(chunk_s, 4),
                            "whole_read_s": round(whole_s, 4), "speedup": round(whole_s / chunk_s, 1)})
            print(f"{n:>8} rows ({results[-1]['file_mb']} MB): one chunk of {args.chunks} in {chunk_s:.3f}s, "
                  f"whole file then filter {whole_s:.3f}s: {whole_s / chunk_s:.1f}x", flush=True)
    out = Path(__file__).resolve().parent / "results" / "chunk_read.json"
    out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
