"""The one code location: Definitions for the active profile (MMG4_CONFIG, default configs/toy.yaml)."""
from __future__ import annotations

import dagster as dg

from assets.raw import raw_assets
from pipeline.config import Profile, load_profile
from resources import LakeResource


def make_definitions(profile: Profile, lake_root: str | None = None) -> dg.Definitions:
    return dg.Definitions(
        assets=raw_assets(profile),
        resources={"lake": LakeResource(root=lake_root or profile.lake_root)},
    )


defs = make_definitions(load_profile())
