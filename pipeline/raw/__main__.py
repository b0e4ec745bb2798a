"""Command line for the raw step, without Dagster.

    python -m pipeline.raw ingest wit
    python -m pipeline.raw ingest all
    python -m pipeline.raw ingest cc_sbu --mirror http://toy-images.local=http://127.0.0.1:8000

Uses the active profile (MMG4_CONFIG) and its lake; prints one JSON line of stats per source. The
toy profile's image URLs point at a loopback server that the raw assets start themselves; from the
command line, start one (`python -m pipeline.toy.image_server DIR`) and pass `--mirror`.
"""
from __future__ import annotations

import argparse
import json
import sys

from pipeline.config import load_profile
from pipeline.lake import Lake
from pipeline.raw.ingest import ingest_source
from pipeline.raw.sources import SOURCES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.raw", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ing = sub.add_parser("ingest", help="read, validate and publish one source (or all)")
    ing.add_argument("source", choices=[*SOURCES, "all"])
    ing.add_argument("--lake", help="override the profile's lake_root")
    ing.add_argument("--mirror", action="append", default=[], metavar="PREFIX=URL",
                     help="rewrite a URL prefix before downloading (repeatable)")
    args = parser.parse_args(argv)
    mirror = {}
    for m in args.mirror:
        if "=" not in m:
            parser.error(f"--mirror {m!r}: expected PREFIX=URL")
        old, new = m.split("=", 1)
        mirror[old] = new
    profile = load_profile()
    lake = Lake.at(args.lake or profile.lake_root)
    names = list(SOURCES) if args.source == "all" else [args.source]
    for name in names:
        result = ingest_source(name, profile, lake, mirror or None,
                               log=lambda m: print(m, file=sys.stderr, flush=True))
        print(json.dumps({"source": name, "path": result.path, **result.stats.to_dict()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
