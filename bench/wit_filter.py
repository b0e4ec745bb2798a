"""The WIT filter's throughput against a bare open_clip loop over the same pairs, side by side in one process.

1. The pipeline's path, `filter_wit_partition` per language with an empty score cache: raw rows, the
   text filter, image bytes from the webdataset shards, sha256 keys, cache look-ups and writes, images
   decoded in a thread pool while the model scores, and every output file (kept rows with their JPEGs,
   dropped, quarantine, histogram, manifest).
2. A bare loop that a user would write by hand over exactly the pairs the pipeline scored: decode and
   preprocess each JPEG, tokenise the captions of one language with its `src_lang`, encode both towers
   in batches of the same size, dot product.

Pairs/s of each and their ratio (goal >= 1/1.2, i.e. the pipeline at most 20% slower), interleaved
repetitions; then an unchanged re-run (goal: zero model calls), and, on this larger toy WIT, the share of
matched captions kept and of mismatched ones dropped (the toy world's ground truth).

    python bench/wit_filter.py [--model DIR] [--rows N] [--reps N] [--threads N] [--decode-threads N]

DIR is an NLLB-CLIP `local-dir:` folder (default: the toy lake's models/nllb_clip/open_clip, built by the
nllb_clip_model asset). A toy world with N WIT rows is built in a temporary lake and its images are
downloaded from the loopback server. Results go to bench/results/wit_filter.json.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.config import load_profile  # noqa: E402
from pipeline.lake import Lake  # noqa: E402
from pipeline.languages import LANGS  # noqa: E402
from pipeline.raw.ingest import ingest_source  # noqa: E402
from pipeline.raw.sources import source  # noqa: E402
from pipeline.rows import read_parquet, write_parquet  # noqa: E402
from pipeline.toy.image_server import toy_mirror  # noqa: E402
from pipeline.toy.wit_truth import filter_truth  # noqa: E402
from pipeline.toy.world import build_world  # noqa: E402
from pipeline.wit.clip import ClipEngine, NllbClip  # noqa: E402
from pipeline.wit.filters import TextQuality  # noqa: E402
from pipeline.wit.images import ImageStore, fetch_images, images_dir  # noqa: E402
from pipeline.wit.run import filter_wit_partition, score_cache_path  # noqa: E402

quiet = lambda _: None  # noqa: E731


def pairs_by_language(lake: Lake, settings) -> dict[str, list[tuple[bytes, str]]]:
    """The distinct (JPEG bytes, caption) pairs that reach the model in each language: what both paths
    score (the pipeline scores a pair repeated in a language once, so the bare loop gets it once too)."""
    store = ImageStore(images_dir(lake).path)
    text = TextQuality(settings.min_caption_chars, settings.min_script_share)
    out: dict[str, list[tuple[bytes, str]]] = {lang: [] for lang in LANGS}
    for row in read_parquet(lake.raw("wit", "rows.parquet")):
        if row.get("lang") in out and store.missing_reason(row["image_url"]) is None and text.filter(row) is True:
            out[row["lang"]].append((store.read(row["image_url"]), row["caption"]))
    return {lang: list(dict.fromkeys(items)) for lang, items in out.items()}


def bare(model: NllbClip, pairs: dict[str, list[tuple[bytes, str]]], batch: int) -> tuple[int, float]:
    """The hand-written loop: per language, per batch: decode + preprocess, tokenise, encode, dot."""
    import torch
    from PIL import Image

    started = time.perf_counter()
    n = 0
    for lang, items in pairs.items():
        model.hf_tokenizer.src_lang = lang
        for k in range(0, len(items), batch):
            chunk = items[k:k + batch]
            pixels = torch.stack([model.preprocess(Image.open(io.BytesIO(b)).convert("RGB")) for b, _ in chunk])
            with torch.inference_mode():
                img = torch.nn.functional.normalize(model.model.encode_image(pixels), dim=-1)
                txt = torch.nn.functional.normalize(model.model.encode_text(model.tokenizer([c for _, c in chunk])), dim=-1)
                (img * txt).sum(-1).tolist()
            n += len(chunk)
    return n, time.perf_counter() - started


def pipeline(lake: Lake, model_folder: Path, settings, languages) -> tuple[int, int, float]:
    """Every language partition with an empty cache; returns (rows, pairs scored, seconds)."""
    cache = Path(score_cache_path(lake))
    for suffix in ("", "-wal", "-shm"):
        Path(str(cache) + suffix).unlink(missing_ok=True)
    engine = ClipEngine(model_folder, settings.device)  # one engine per run, as one process would have
    engine.model()  # loading is not scoring (the bare loop's model is loaded before its clock starts)
    started = time.perf_counter()
    calls = rows = 0
    for lang in LANGS:
        r = filter_wit_partition(lang, lake, engine, settings, log=quiet, languages=languages)
        calls += r.stats.model_calls
        rows += r.stats.rows_in
    return rows, calls, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="NLLB-CLIP local-dir folder")
    parser.add_argument("--rows", type=int, default=22000,
                        help="toy WIT rows to generate (11 languages; duplicates are then removed)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (both paths)")
    parser.add_argument("--decode-threads", type=int, help="default: the toy profile's wit.decode_threads")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "wit_filter.json")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    profile = load_profile("configs/toy.yaml")
    folder = Path(args.model) if args.model else Path(str(Lake.at(profile.lake_root).model("nllb_clip", "open_clip")))
    if not (folder / "open_clip_config.json").is_file():
        print(f"no NLLB-CLIP in {folder}: materialise nllb_clip_model first (make demo), or pass --model", file=sys.stderr)
        return 2
    settings = profile.wit.model_copy(update={"batch_size": args.batch,
                                              "decode_threads": args.decode_threads or profile.wit.decode_threads})
    work = Path(tempfile.mkdtemp(prefix="bench-wit-"))
    lake = Lake.at(work)
    world = profile.toy_world.model_copy(update={"wit_rows": args.rows})
    t0 = time.perf_counter()
    build_world(lake.toy_world().path, world, profile.languages)
    p = profile.model_copy(update={"lake_root": str(work), "toy_world": world})
    ingest_source("wit", p, lake, log=quiet)
    # the toy WIT repeats its (image, caption) pairs many times per language (240 scenes); real WIT rows
    # are distinct pairs. Keep one row per pair, so the pipeline handles as many rows as it scores pairs
    spec = source("wit")
    rows = list({spec.row_id(r): r for r in read_parquet(lake.raw("wit", "rows.parquet"))}.values())
    write_parquet(lake.raw("wit", "rows.parquet"), rows, row_id=spec.row_id)
    with toy_mirror(lake.toy_world("www"), stall_s=p.download.timeout_s + 3) as mirror:
        fetch_images(lake, p.download, mirror, log=quiet)
    pairs = pairs_by_language(lake, settings)
    n_pairs = sum(map(len, pairs.values()))
    print(f"{n_pairs} distinct pairs in {len(LANGS)} languages ready in {time.perf_counter() - t0:.0f}s; model {folder}",
          flush=True)

    model = NllbClip.load(folder)
    bare(model, {lang: items[:args.batch] for lang, items in pairs.items()}, args.batch)  # warm-up
    pipeline(lake, folder, settings, profile.languages)  # warm-up (imports, matplotlib)
    runs: dict[str, list[float]] = {"pipeline": [], "bare": []}
    for rep in range(args.reps):  # interleaved, so load from other programs hits both alike
        n_rows, calls, seconds = pipeline(lake, folder, settings, profile.languages)
        assert calls == n_pairs, f"the pipeline scored {calls} pairs, the bare loop {n_pairs}"
        runs["pipeline"].append(calls / seconds)
        n, seconds = bare(model, pairs, args.batch)
        runs["bare"].append(n / seconds)
        print(f"rep {rep + 1}: pipeline {runs['pipeline'][-1]:.0f} pairs/s, bare {runs['bare'][-1]:.0f} pairs/s",
              flush=True)
    # an unchanged re-run: everything from the cache
    engine = ClipEngine(folder, settings.device)
    started = time.perf_counter()
    rerun_calls = sum(filter_wit_partition(lang, lake, engine, settings, log=quiet, languages=profile.languages)
                      .stats.model_calls for lang in LANGS)
    rerun_s = time.perf_counter() - started
    truth = filter_truth(lake, LANGS)  # the toy world's ground truth, on this larger WIT
    med = {k: statistics.median(v) for k, v in runs.items()}
    result = {
        "rows_generated": args.rows, "rows": n_rows, "pairs": n_pairs, "languages": len(LANGS), "batch": args.batch, "torch_threads": args.threads,
        "decode_threads": settings.decode_threads, "reps": args.reps,
        "pipeline_pairs_per_s": round(med["pipeline"], 1), "bare_pairs_per_s": round(med["bare"], 1),
        "ratio": round(med["pipeline"] / med["bare"], 3), "goal_ratio": round(1 / 1.2, 3),
        "runs": {k: [round(x, 1) for x in v] for k, v in runs.items()},
        "rerun_model_calls": rerun_calls, "rerun_seconds": round(rerun_s, 2),
        "first_run_seconds": round(n_pairs / med["pipeline"], 2),
        "toy_truth": {lang: {k: t[k] for k in ("matched", "matched_kept_share", "mismatched", "mismatched_dropped_share")}
                      for lang, t in truth.items()},
        "model": str(folder), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
    }
    print(json.dumps(result, indent=1))
    print(f"ratio {result['ratio']} (goal >= {result['goal_ratio']}): {'MET' if result['ratio'] >= 1 / 1.2 else 'NOT MET'}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
