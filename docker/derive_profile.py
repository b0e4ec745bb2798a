"""Write a copy of a profile with the values the environment overrides, and check it loads.

    python docker/derive_profile.py configs/toy.yaml /tmp/mmg4-profile.yaml

MMG4_MEMORY_URL -> translation.memory_url (a password is better left out of the URL: libpq reads
PGPASSWORD); MMG4_LAKE_ROOT -> lake_root. Used by docker/entrypoint.sh.
"""
from __future__ import annotations

import os
import sys

import yaml

from pipeline.config import load_profile


def main(src: str, dst: str) -> None:
    with open(src) as f:
        data = yaml.safe_load(f)
    if os.environ.get("MMG4_MEMORY_URL"):
        data.setdefault("translation", {})["memory_url"] = os.environ["MMG4_MEMORY_URL"]
    if os.environ.get("MMG4_LAKE_ROOT"):
        data["lake_root"] = os.environ["MMG4_LAKE_ROOT"]
    with open(dst, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    load_profile(dst)  # a typo in the environment fails here, naming the field


if __name__ == "__main__":
    main(*sys.argv[1:3])
