"""Stage mixtures: the profile's `stages.<stage>.datasets` (shard set -> sampling weight) resolved against
the shard sets in the lake.

`check_mixture(profile, lake)` is what the `mixtures` asset check and the trainer call: it returns every
stage's shard sets with their sampling probabilities, or raises `MixtureError` listing each dataset that has
no shards, lacks some of its partitions, or has a file that does not match its manifest. A stage samples
each batch from ONE dataset with probability weight / sum of the stage's weights (MiniGPT's
`sample_ratio`); within a dataset, rows are drawn uniformly over all its languages and chunks.

The schema (`ShardSettings`, `StageMixture`, `Profile.stages`) and the overlay loader (`load_overlay`, for
the rows of the paper's Table 2 in `configs/ablations/`) live in `pipeline.config`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from upath import UPath

from pipeline.config import Profile
from pipeline.lake import Lake
from pipeline.shards.reader import ShardError, verify_shard_set
from pipeline.shards.sets import shard_set
from pipeline.shards.writer import MANIFEST


class MixtureError(ValueError):
    """A stage mixture that cannot be trained on; the message lists every dataset at fault and the fix."""


@dataclass
class ResolvedSet:
    path: str  # relative to the lake root
    lang: str
    chunk: int
    rows: int
    digest: str


@dataclass
class ResolvedEntry:
    dataset: str
    weight: float
    probability: float
    sets: list[ResolvedSet] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # partition keys with no shard set
    corrupt: list[str] = field(default_factory=list)  # what the manifest check said

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.sets)

    def to_dict(self) -> dict[str, Any]:
        return {"weight": self.weight, "probability": self.probability, "rows": self.rows,
                "sets": [vars(s) for s in self.sets], "missing": self.missing, "corrupt": self.corrupt}


@dataclass
class ResolvedStage:
    stage: str
    entries: list[ResolvedEntry]

    def to_dict(self) -> dict[str, Any]:
        return {e.dataset: e.to_dict() for e in self.entries}


def _n_chunks(profile: Profile, name: str) -> int:
    spec = shard_set(name)
    return profile.translation.chunk_count(spec.translated) if spec.partitioning == "translated" else 1


def expected_sets(profile: Profile, lake: Lake, name: str) -> list[tuple[str, int, UPath]]:
    """(partition key, chunk, folder) of every shard set dataset `name` should have under this profile;
    for a set read from raw sources, the languages found in the lake (it writes whichever its source has)."""
    spec = shard_set(name)
    root = lake.path("shards", name)
    if spec.partitioning == "single":
        langs = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []
        return [(lang, 0, root / lang) for lang in langs]
    n = _n_chunks(profile, name)
    out = []
    for lang in profile.languages:
        for chunk in range(n):
            key = lang if n == 1 else f"{chunk:03d}|{lang}"
            out.append((key, chunk, root / lang if n == 1 else root / lang / f"chunk-{chunk:03d}-of-{n:03d}"))
    return out


def _relative(lake: Lake, folder: UPath) -> str:
    return str(folder.path)[len(str(lake.root.path)):].lstrip("/")


def resolve_stages(profile: Profile, lake: Lake, hashes: bool = False) -> dict[str, ResolvedStage]:
    """Every stage of the profile with the shard sets in the lake (sizes checked; sha256 too with `hashes`)."""
    out: dict[str, ResolvedStage] = {}
    for stage, mixture in profile.stages.items():
        total = sum(mixture.datasets.values())
        entries = []
        for name, weight in mixture.datasets.items():
            entry = ResolvedEntry(name, weight, weight / total)
            for key, chunk, folder in expected_sets(profile, lake, name):
                if not (folder / MANIFEST).exists():
                    entry.missing.append(key)
                    continue
                try:
                    manifest = verify_shard_set(folder, hashes=hashes)
                except ShardError as e:
                    entry.corrupt.append(str(e))
                    continue
                lang = manifest.extra.get("lang", key.split("|")[-1])
                entry.sets.append(ResolvedSet(_relative(lake, folder), lang, chunk, manifest.total_rows,
                                              manifest.digest()))
            entries.append(entry)
        out[stage] = ResolvedStage(stage, entries)
    return out


def mixture_problems(stages: dict[str, ResolvedStage]) -> list[str]:
    """One line per dataset that a stage names but cannot read in full."""
    problems = []
    for stage, resolved in stages.items():
        for e in resolved.entries:
            asset = f"shards_{e.dataset}"
            if not e.sets and not e.missing and not e.corrupt:
                problems.append(f"{stage}: {e.dataset} has no shards (materialise the `{asset}` asset)")
            elif not e.sets and not e.corrupt:
                problems.append(f"{stage}: {e.dataset} has no shards (materialise `{asset}`; "
                                f"{len(e.missing)} partition(s) missing)")
            elif e.missing:
                shown = ", ".join(e.missing[:6]) + (" ..." if len(e.missing) > 6 else "")
                problems.append(f"{stage}: {e.dataset} lacks shards for {len(e.missing)} partition(s): {shown} "
                                f"(materialise `{asset}` for them)")
            problems += [f"{stage}: {e.dataset}: {c}" for c in e.corrupt]
            if e.sets and not e.rows and not e.missing and not e.corrupt:
                problems.append(f"{stage}: {e.dataset} has shard sets but no rows")
    return problems


def check_mixture(profile: Profile, lake: Lake, hashes: bool = False) -> dict[str, ResolvedStage]:
    """The profile's stages resolved against the lake; `MixtureError` naming every dataset at fault."""
    stages = resolve_stages(profile, lake, hashes=hashes)
    problems = mixture_problems(stages)
    if problems:
        raise MixtureError(f"profile {profile.name}: the stage mixtures cannot be trained on:\n  - "
                           + "\n  - ".join(problems))
    return stages
