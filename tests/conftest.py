"""Shared fixtures: a small toy profile whose lake lives in a temporary folder."""
from __future__ import annotations

import pytest

from pipeline.config import Profile, load_profile
from pipeline.lake import Lake
from pipeline.toy.world import build_world


def small_profile(lake_root: str, **toy_overrides) -> Profile:
    base = load_profile("configs/toy.yaml")
    toy = base.toy_world.model_copy(update={
        "scenes": 40, "cc_sbu_pairs": 12, "laion_pairs": 12, "broken_urls": 6, "llava_rows": 20,
        "palo_rows": 20, "cambrian_rows": 20, "wit_rows": 24, "xstorycloze_stories": 6, "mmmu_questions": 12,
        **toy_overrides,
    })
    # generous time-out: a loaded 2-core CI machine must not turn a good image into a time-out
    download = base.download.model_copy(update={"timeout_s": 3.0, "shard_size": 10})
    # every row into every language: a 20-row Cambrian cut one language per row leaves some languages
    # empty (the slicing has its own test in test_translation.py)
    translation = base.translation.model_copy(update={"one_language_per_row": ()})
    return base.model_copy(update={"lake_root": str(lake_root), "toy_world": toy, "download": download,
                                   "translation": translation})


@pytest.fixture(scope="session")
def toy_lake(tmp_path_factory) -> tuple[Profile, Lake]:
    """A small toy world, built once per test session; tests may write raw/ but never change toy_world/."""
    root = tmp_path_factory.mktemp("lake")
    profile = small_profile(str(root))
    lake = Lake.at(root)
    build_world(lake.toy_world().path, profile.toy_world, profile.languages)
    return profile, lake
