"""Command line for the shard step, without Dagster.

    python -m pipeline.shards build --set flores                 # a set read from raw sources: every language
    python -m pipeline.shards build --set ci_m --lang fra_Latn   # a partitioned set: one language (or 'all')
    python -m pipeline.shards build --set lavam --lang all --chunk 1
    python -m pipeline.shards check                              # the profile's stage mixtures against the lake
    python -m pipeline.shards check --overlay configs/ablations/table2_row2_ci.yaml --hashes

Uses the active profile (MMG4_CONFIG) and its lake, writes into the same folders as the Dagster assets and
prints one JSON line of stats per shard set written. `check` exits 1 and names every dataset at fault when
a stage cannot be trained on.
"""
from __future__ import annotations

import argparse
import json
import sys

from pipeline.config import load_overlay, load_profile
from pipeline.lake import Lake
from pipeline.shards.mixture import MixtureError, check_mixture
from pipeline.shards.run import build_shards, chunk_count
from pipeline.shards.sets import SHARD_SETS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.shards", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write the shard sets of one set (one partition, or all)")
    b.add_argument("--set", required=True, choices=sorted(SHARD_SETS))
    b.add_argument("--lang", help="partitioned sets: a FLORES code of the profile, or 'all'")
    b.add_argument("--chunk", type=int, help="one chunk of a chunked set (0-based); default: every chunk")
    b.add_argument("--lake", help="override the profile's lake_root")
    b.add_argument("--quiet", action="store_true")
    c = sub.add_parser("check", help="resolve the stage mixtures; exit 1 naming what is missing or corrupt")
    c.add_argument("--overlay", help="a profile overlay (configs/ablations/...) applied to the active profile")
    c.add_argument("--hashes", action="store_true", help="also check every file's sha256 (reads all shards)")
    c.add_argument("--lake", help="override the profile's lake_root")
    args = parser.parse_args(argv)

    profile = load_profile()
    if args.command == "check":
        if args.overlay:
            profile = load_overlay(args.overlay, profile)
        try:
            stages = check_mixture(profile, Lake.at(args.lake or profile.lake_root), hashes=args.hashes)
        except MixtureError as e:
            print(e, file=sys.stderr)
            return 1
        for stage, resolved in stages.items():
            print(json.dumps({"stage": stage, **resolved.to_dict()}, sort_keys=True))
        return 0

    spec = SHARD_SETS[args.set]
    lake = Lake.at(args.lake or profile.lake_root)
    log = (lambda _: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    if spec.partitioning == "single":
        if args.lang or args.chunk is not None:
            parser.error(f"--set {args.set} is read from raw sources and written whole: no --lang/--chunk")
        parts = [(None, 0)]
    else:
        if not args.lang:
            parser.error(f"--set {args.set} is partitioned by language: give --lang (a FLORES code or 'all')")
        langs = list(profile.languages) if args.lang == "all" else [args.lang]
        unknown = [lang for lang in langs if lang not in profile.languages]
        if unknown:
            parser.error(f"--lang {unknown[0]} is not a language of profile {profile.name}: {list(profile.languages)}")
        n = chunk_count(profile, spec)
        if args.chunk is not None and not 0 <= args.chunk < n:
            parser.error(f"--chunk {args.chunk}: profile {profile.name} has {n} chunk(s) of {args.set}, 0..{n - 1}")
        parts = [(lang, c) for lang in langs for c in (range(n) if args.chunk is None else [args.chunk])]
    for lang, chunk in parts:
        result = build_shards(args.set, profile, lake, lang, chunk, log=log)
        print(json.dumps({"set": args.set, "lang": lang, "chunk": chunk, "path": result.path,
                          "data_version": result.data_version, **result.stats.to_dict()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
