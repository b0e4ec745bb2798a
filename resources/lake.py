"""The lake resource: where a profile's data lives (a local folder or an fsspec URL)."""
from __future__ import annotations

import dagster as dg

from pipeline.lake import Lake


class LakeResource(dg.ConfigurableResource):
    """Storage root of the active profile; every asset reads and writes below it."""

    root: str

    def get(self) -> Lake:
        return Lake.at(self.root)
