"""Pipeline overhead and re-run cost of translation, side by side in one process.

1. The pipeline's path (segmentation, translation memory look-ups and writes, token batching,
   quality guards, record rebuilding) against a bare CTranslate2 `translate_iterable` over the same
   unique sentences (tokenise, translate, detokenise): segments/s of each and the ratio (goal >= 0.85).
2. A re-run on unchanged input: model calls (goal 0) and wall time against the first run (goal < 10%).

    python bench/translation_pipeline.py [--model DIR] [--langs N] [--device cuda --compute-type int8_float16]

DIR is a CTranslate2 NLLB folder (default: the toy lake's models/nllb/ct2, built by `make demo`;
if it is missing, a small toy NLLB is trained first). Results go to bench/results/translation_pipeline.json.
"""
from __future__ import annotations

import argparse
import json
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
from pipeline.languages import TARGET_LANGS  # noqa: E402
from pipeline.toy import lexicon  # noqa: E402
from pipeline.toy import nllb as toy_nllb  # noqa: E402
from pipeline.translation import nllb  # noqa: E402
from pipeline.stats import StepStats  # noqa: E402
from pipeline.translation.run import translate_texts  # noqa: E402
from pipeline.translation.translator import Translator  # noqa: E402


def bare(translator: Translator, items: list[tuple[str, str]]) -> tuple[list[str], float]:
    """What a user would write by hand: one translate_iterable over all sentences."""
    started = time.perf_counter()
    tok = translator.tokenizer
    tok.src_lang = "eng_Latn"
    tokens = [tok.convert_ids_to_tokens(ids) for ids in tok([s for s, _ in items])["input_ids"]]
    results = translator.engine.translate_iterable(
        tokens, target_prefix=[[lang] for _, lang in items], max_batch_size=translator.batch_tokens,
        batch_type="tokens", beam_size=1, max_decoding_length=96,  # the toy model has 128 positions
    )
    out = [tok.decode(tok.convert_tokens_to_ids(r.hypotheses[0][1:]), skip_special_tokens=True) for r in results]
    return out, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="CTranslate2 NLLB folder")
    parser.add_argument("--langs", type=int, default=len(TARGET_LANGS))
    parser.add_argument("--reps", type=int, default=5, help="interleaved repetitions of each path")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--compute-type", default="int8", help="int8 (CPU), int8_float16 or float16 (GPU)")
    parser.add_argument("--batch-tokens", type=int, default=2048)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "translation_pipeline.json")
    args = parser.parse_args()

    model = Path(args.model) if args.model else Path(str(Lake.at(load_profile().lake_root).model("nllb", "ct2")))
    work = Path(tempfile.mkdtemp(prefix="bench-tp-"))
    if not (model / "model.bin").exists():
        print(f"{model} missing: training a quick toy NLLB into {work}", flush=True)
        toy_nllb.train_toy_nllb(None, work / "hf", toy_nllb.QUICK, log=lambda _: None)
        model = nllb.convert_to_ctranslate2(work / "hf", work / "ct2", "int8")

    sentences = [row["eng_Latn"] for row in lexicon.parallel_corpus()]
    langs = list(TARGET_LANGS[: args.langs])
    translator = Translator(str(model), device=args.device, compute_type=args.compute_type,
                            intra_threads=2 if args.device == "cpu" else 4, batch_tokens=args.batch_tokens)
    items = [(s, lang) for lang in langs for s in sentences]
    bare(translator, items[:64])  # warm-up

    def pipeline(url: str, overlap: bool = False) -> tuple[StepStats, float]:
        translator.overlap = overlap
        stats = StepStats("bench", unit="segments")
        t0 = time.perf_counter()
        with translator.open_memory(url) as memory:
            for lang in langs:  # one partition per language, as the assets run
                translate_texts(sentences, lang, translator, memory, stats, log=lambda _: None)
        return stats, time.perf_counter() - t0

    # interleaved repetitions, so that load from other programs hits every path alike; each pipeline
    # repetition starts from an empty memory. The pipeline runs as configured by default (one batch at a
    # time) and with overlap_batches (the next batch decodes while the last is checked and stored).
    bare_s, pipe_s, overlap_s = [], [], []
    for rep in range(args.reps):
        bare_s.append(bare(translator, items)[1])
        first, seconds = pipeline(f"sqlite:///{work}/tm{rep}.sqlite")
        pipe_s.append(seconds)
        _, seconds = pipeline(f"sqlite:///{work}/tm-overlap{rep}.sqlite", overlap=True)
        overlap_s.append(seconds)
    again, again_s = pipeline(f"sqlite:///{work}/tm{args.reps - 1}.sqlite")  # unchanged input, warm memory
    med = statistics.median
    first_s = med(pipe_s)  # a first run (empty memory), median of the repetitions
    bare_rate = len(items) / med(bare_s)
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores",
        "model": str(model),
        "device": args.device,
        "compute_type": args.compute_type,
        "batch_tokens": args.batch_tokens,
        "segments": len(items),
        "repetitions": args.reps,
        "bare_seconds": [round(x, 3) for x in bare_s],
        "pipeline_seconds": [round(x, 3) for x in pipe_s],
        "pipeline_overlap_seconds": [round(x, 3) for x in overlap_s],
        "bare_translate_iterable_segments_per_s": round(bare_rate, 1),
        "pipeline_segments_per_s": round(first.model_calls / med(pipe_s), 1),
        "pipeline_over_bare": round((first.model_calls / med(pipe_s)) / bare_rate, 3),
        "pipeline_overlap_over_bare": round((first.model_calls / med(overlap_s)) / bare_rate, 3),
        "pipeline_retried": first.counters.get("retried", 0),
        "rerun_model_calls": again.model_calls,
        "rerun_seconds": round(again_s, 3),
        "first_run_seconds": round(first_s, 3),
        "rerun_over_first": round(again_s / first_s, 4),
    }
    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    for k, v in result.items():
        print(f"{k:<40} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
