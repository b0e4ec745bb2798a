"""The shard step's entry functions: what the `shards` assets and `python -m pipeline.shards` call.

- `build_shards`: one shard-set spec, one partition (a language, a chunk of one, or everything for a set
  read from raw sources) -> Arrow shard sets under `shards/<set>/<lang>/[chunk-<i>-of-<n>/]`, manifests,
  stats that account for every input row (kept, dropped with a reason, quarantined with a reason).
- `resolve_mixtures`: the profile's stage mixtures resolved against the shard sets in the lake ->
  `shards/mixtures/<profile>/mixture.json` (what each stage samples from, with weights and data versions),
  and the problems `check_mixture` would raise.
"""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable

from upath import UPath

from pipeline.config import Profile
from pipeline.lake import FileEntry, Lake, Manifest, build_manifest, sha256_file, write_text_atomic
from pipeline.shards.mixture import mixture_problems, resolve_stages
from pipeline.shards.sets import LoadContext, ShardSetSpec, shard_set
from pipeline.shards.writer import MANIFEST, Example, rmtree, write_shard_set
from pipeline.stats import StepResult, StepStats

Log = Callable[[str], None]
SAMPLE_ROWS = 5


def chunk_count(profile: Profile, spec: ShardSetSpec) -> int:
    """How many chunks per language a set has: its translated dataset's, else one."""
    return profile.translation.chunk_count(spec.translated) if spec.partitioning == "translated" else 1


def shard_folder(lake: Lake, name: str, lang: str, chunk: int = 0, n_chunks: int = 1) -> UPath:
    """shards/<set>/<lang>/, or .../<lang>/chunk-<i>-of-<n>/ for a set of a chunked dataset (as translated/)."""
    folder = lake.path("shards", name, lang)
    return folder if n_chunks == 1 else folder / f"chunk-{chunk:03d}-of-{n_chunks:03d}"


def input_versions(spec: ShardSetSpec, ctx: LoadContext) -> dict[str, str]:
    """The data version of each input folder: its manifest's digest (WIT's kept rows: their sha256)."""
    out = {}
    for label, folder in spec.input_folders(ctx).items():
        if (folder / MANIFEST).exists():
            out[label] = Manifest.read(folder).digest()
        elif spec.partitioning == "language" and (folder / "kept.parquet").exists():
            out[label] = sha256_file(folder / "kept.parquet")[:32]
        else:
            out[label] = "missing"
    return out


def _combined(versions: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(versions, sort_keys=True).encode()).hexdigest()[:32]


def _sample(examples: list[Example]) -> list[dict[str, Any]]:
    def first(role: str, ex: Example) -> str:
        return next((t["value"] for t in ex.conversations if t["from"] == role), "")[:160]
    return [{"id": e.id, "lang": e.lang, "prompt": first("human", e), "answer": first("gpt", e),
             "image": "yes" if e.image is not None else "no"} for e in examples[:SAMPLE_ROWS]]


def build_shards(name: str, profile: Profile, lake: Lake, lang: str | None = None, chunk: int = 0,
                 log: Log = print, after_file: Callable[[str], None] | None = None) -> StepResult:
    """Write the shard sets of one partition of shard set `name` (a partitioned set needs `lang`)."""
    spec = shard_set(name)
    n_chunks = chunk_count(profile, spec)
    if spec.partitioning != "single" and lang is None:
        raise ValueError(f"shard set {name} is partitioned by language: give lang (one of {list(profile.languages)})")
    if spec.partitioning == "single" and lang is not None:
        raise ValueError(f"shard set {name} is not partitioned: it writes every language of its source at once")
    stats = StepStats(f"shards_{name}", unit="examples")
    ctx = LoadContext(profile, lake, stats, lang, chunk, n_chunks)
    settings = profile.shards
    with stats.timed():
        inputs = input_versions(spec, ctx)
        examples = spec.load(ctx)
        by_lang: dict[str, list[Example]] = defaultdict(list)
        if lang is not None:
            by_lang[lang] = []  # written even when empty: the partition then has an empty set, not a stale one
        for ex in examples:
            by_lang[ex.lang].append(ex)
        if lang is not None and set(by_lang) != {lang}:
            raise ValueError(f"shard set {name} partition {lang}: rows in other languages {sorted(set(by_lang) - {lang})}")
        manifests: dict[str, Manifest] = {}
        skipped: dict[str, str] = {}  # example id -> why its image could not be read
        for code, exs in sorted(by_lang.items()):
            folder = shard_folder(lake, name, code, chunk, n_chunks)
            extra = {"dataset": name, "lang": code, "chunk": chunk, "n_chunks": n_chunks,
                     "input_versions": inputs, "input_version": _combined(inputs),
                     "settings": settings.model_dump(mode="json")}
            report = write_shard_set(folder, exs, target_bytes=settings.target_bytes, batch_rows=settings.batch_rows,
                                     seed=settings.seed, extra=extra, after_file=after_file)
            skipped.update(report.skipped)
            stats.items += report.rows
            manifests[code] = report.manifest
            log(f"shards/{name}/{code}: {report.rows} examples in {len(report.manifest.files)} file(s), "
                f"{report.manifest.total_bytes} bytes")
        if spec.partitioning == "single":  # a language the source no longer has must not linger
            root = lake.path("shards", name)
            for p in root.iterdir() if root.exists() else []:
                if p.is_dir() and p.name not in by_lang:
                    rmtree(p)
                    log(f"shards/{name}/{p.name}: removed (no rows in that language any more)")
    # an input row is kept when at least one of its examples was written (a Flores row gives 110)
    origins: dict[str, list[str]] = defaultdict(list)
    for ex in examples:
        origins[ex.origin or ex.id].append(ex.id)
    lost = [o for o, ids in origins.items() if all(i in skipped for i in ids)]
    for o in lost:
        stats.rows_quarantined += 1
        stats.reasons[skipped[origins[o][0]].split(":")[0] + " when written"] += 1
    stats.rows_kept = len(origins) - len(lost)
    stats.add(examples=stats.items, languages=len(manifests), shard_files=sum(len(m.files) for m in manifests.values()),
              shard_bytes=sum(m.total_bytes for m in manifests.values()))
    stats.sample = _sample(examples)
    if lang is not None:
        return StepResult(str(shard_folder(lake, name, lang, chunk, n_chunks)), manifests[lang], stats)
    combined = Manifest(files=[FileEntry(f"{code}/{f.path}", f.rows, f.bytes, f.sha256)
                               for code, m in sorted(manifests.items()) for f in m.files],
                        extra={"sets": {code: m.digest() for code, m in manifests.items()}})
    return StepResult(str(lake.path("shards", name)), combined, stats)


@dataclass
class MixtureResult:
    result: StepResult
    problems: list[str]  # what check_mixture raises about; empty when every stage can be trained


def mixtures_folder(lake: Lake, profile: Profile) -> UPath:
    return lake.path("shards", "mixtures", profile.name)


def resolve_mixtures(profile: Profile, lake: Lake, log: Log = print) -> MixtureResult:
    """Write what each stage of the profile samples from (`mixture.json`): the shard sets of every named
    dataset with their rows, data versions and sampling probabilities."""
    stats = StepStats("stage_mixtures", unit="shard sets")
    with stats.timed():
        stages = resolve_stages(profile, lake)
        problems = mixture_problems(stages)
        doc = {"profile": profile.name, "stages": {s: r.to_dict() for s, r in stages.items()}, "problems": problems}
        folder = mixtures_folder(lake, profile)
        write_text_atomic(folder / "mixture.json", json.dumps(doc, indent=2, sort_keys=True))
        manifest = build_manifest(folder, {"mixture.json": None},
                                  extra={"stages": sorted(stages), "problems": len(problems)})
    for stage, resolved in stages.items():
        stats.items += sum(len(e.sets) for e in resolved.entries)
        for e in resolved.entries:
            stats.counters[f"{stage}/{e.dataset}/rows"] = e.rows
            stats.counters[f"{stage}/{e.dataset}/probability"] = round(e.probability, 4)
        log(f"{stage}: " + ", ".join(f"{e.dataset} p={e.probability:.3f} ({e.rows} rows)" for e in resolved.entries))
    for p in problems:
        log(f"mixture problem: {p}")
    stats.sample = [{"stage": s, "dataset": e.dataset, "weight": e.weight, "probability": round(e.probability, 4),
                     "rows": e.rows, "sets": len(e.sets)} for s, r in stages.items() for e in r.entries]
    return MixtureResult(StepResult(str(folder), manifest, stats), problems)
