"""Command line for the translation steps, without Dagster.

    python -m pipeline.translation translate --dataset llava_instruct --lang fra_Latn
    python -m pipeline.translation translate --dataset mmmu --lang all
    python -m pipeline.translation translate --dataset llava_instruct --lang hin_Deva --chunk 1

A dataset the profile splits into chunks (`translation.chunks`) is translated chunk by chunk, into the
same folders as the Dagster partitions; `--chunk` picks one (default: all of them).

Uses the active profile (MMG4_CONFIG) and its lake; the NLLB model must exist (materialise
`nllb_model`, or train the toy one with `python -m pipeline.toy.nllb`). Prints one JSON line of stats per
language and chunk.
"""
from __future__ import annotations

import argparse
import json
import sys

from pipeline.config import load_profile
from pipeline.lake import Lake
from pipeline.translation.datasets import DATASETS
from pipeline.translation.run import Engines, translate_partition


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.translation", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("translate", help="translate one dataset into one language (or all)")
    t.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    t.add_argument("--lang", required=True, help="a FLORES code of the profile, or 'all'")
    t.add_argument("--lake", help="override the profile's lake_root")
    t.add_argument("--chunk", type=int, help="one chunk of a chunked dataset (0-based); default: every chunk")
    t.add_argument("--batch-tokens", type=int, help="override translation.batch_tokens")
    t.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    profile = load_profile()
    lake = Lake.at(args.lake or profile.lake_root)
    langs = list(profile.languages) if args.lang == "all" else [args.lang]
    unknown = [lang for lang in langs if lang not in profile.languages]
    if unknown:
        parser.error(f"--lang {unknown[0]} is not a language of profile {profile.name}: {list(profile.languages)}")
    n_chunks = profile.translation.chunk_count(args.dataset)
    if args.chunk is not None and not 0 <= args.chunk < n_chunks:
        parser.error(f"--chunk {args.chunk}: profile {profile.name} splits {args.dataset} into {n_chunks} chunk(s), "
                     f"0..{n_chunks - 1}")
    engines = Engines(profile.translation, lake, batch_tokens=args.batch_tokens)
    log = (lambda _: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    for lang in langs:
        for chunk in range(n_chunks) if args.chunk is None else [args.chunk]:
            part = translate_partition(args.dataset, lang, lake, engines, chunk, n_chunks, log=log,
                                       languages=profile.languages)
            print(json.dumps({"dataset": args.dataset, "lang": lang, "chunk": chunk, "path": part.result.path,
                              **part.result.stats.to_dict()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
