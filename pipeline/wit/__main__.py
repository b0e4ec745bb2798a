"""Command line for the WIT steps, without Dagster.

    python -m pipeline.wit images                      # download every unique WIT image URL once
    python -m pipeline.wit filter --lang fra_Latn      # one language (or --lang all)
    python -m pipeline.wit filter --lang all --threshold 0.1

Uses the active profile (MMG4_CONFIG) and its lake; raw WIT must exist (materialise `wit`), and for
`filter` the NLLB-CLIP (materialise `nllb_clip_model`). URLs are downloaded as written: the toy
profile's loopback mirror is started by the Dagster asset, or pass `--mirror http://toy-images.local=URL`
(see `python -m pipeline.toy.image_server`). Prints one JSON line of stats per step or language.
"""
from __future__ import annotations

import argparse
import json
import sys

from pipeline.config import load_profile
from pipeline.lake import Lake
from pipeline.languages import SOURCE_LANG
from pipeline.wit.clip import ClipEngine
from pipeline.wit.images import fetch_images
from pipeline.wit.run import filter_wit_partition, model_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.wit", description=__doc__.split("\n")[0])
    parser.add_argument("--lake", help="override the profile's lake_root")
    parser.add_argument("--quiet", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    i = sub.add_parser("images", help="download the images of raw WIT into wit/images/")
    i.add_argument("--mirror", action="append", default=[], metavar="PREFIX=URL",
                   help="rewrite a URL prefix before downloading (repeatable)")
    f = sub.add_parser("filter", help="filter one language of raw WIT (or all)")
    f.add_argument("--lang", required=True, help="a FLORES code of the profile (or eng_Latn), or 'all'")
    f.add_argument("--threshold", type=float, help="override wit.threshold")
    args = parser.parse_args(argv)

    profile = load_profile()
    lake = Lake.at(args.lake or profile.lake_root)
    log = (lambda _: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    if args.command == "images":
        mirror = dict(m.split("=", 1) for m in args.mirror) or None
        result = fetch_images(lake, profile.download, mirror, log=log)
        print(json.dumps({"step": "wit_images", "path": result.path, **result.stats.to_dict()}), flush=True)
        return 0
    languages = (SOURCE_LANG, *profile.languages)
    langs = list(languages) if args.lang == "all" else [args.lang]
    unknown = [lang for lang in langs if lang not in languages]
    if unknown:
        parser.error(f"--lang {unknown[0]} is not a language of profile {profile.name}: {list(languages)}")
    settings = profile.wit if args.threshold is None else profile.wit.model_copy(update={"threshold": args.threshold})
    engine = ClipEngine(model_dir(lake), settings.device, settings.torch_threads)
    for lang in langs:
        result = filter_wit_partition(lang, lake, engine, settings, log=log, languages=profile.languages)
        print(json.dumps({"lang": lang, "path": result.path, **result.stats.to_dict()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
