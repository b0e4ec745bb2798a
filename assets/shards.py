"""Group `shards`: Arrow training shards per (dataset, language), and the stage mixtures that read them.

One asset per shard set (`shards_<set>`), partitioned like its input, so a change in one translated
partition rewrites only the shards that hold it: sets of a translated dataset have its partitions (a
language, or `chunk|lang`), WIT has one per language (like `wit_filtered`), and sets read from raw sources
are unpartitioned (they write one shard set per language their source has). `shards_wit` exists only once
the code location has a `wit_filtered` asset (a logged message says so until then), and skips, with a
warning, a language whose `wit/<lang>/kept.parquet` is not written yet. Every materialisation checks
its files against the manifest (`verified`). `stage_mixtures` resolves the profile's stage mixtures
against the shard sets; its `mixtures` check fails, naming them, while a stage names a dataset with no
shards (or missing partitions); it does not block (the trainer calls `check_mixture` and stops there).
"""

import logging
import warnings
from collections.abc import Sequence

import dagster as dg
from upath import UPath

from assets.metadata import materialize_result, stats_metadata
from assets.translation import partition_of, translation_partitions
from pipeline.config import Profile
from pipeline.shards.reader import ShardError, verify_shard_set
from pipeline.shards.run import build_shards, chunk_count, resolve_mixtures
from pipeline.shards.sets import SHARD_SETS, ShardInputMissing, ShardSetSpec, shard_set
from resources import LakeResource

GROUP = "shards"
MIXTURES = "stage_mixtures"


def asset_name(name: str) -> str:
    return f"shards_{name}"


def shard_partitions(profile: Profile, spec: ShardSetSpec) -> dg.PartitionsDefinition | None:
    if spec.partitioning == "translated":
        return translation_partitions(profile, spec.translated)
    if spec.partitioning == "language":
        return dg.StaticPartitionsDefinition(list(profile.languages))
    return None


def _verified_spec(name: str, partitions: dg.PartitionsDefinition | None) -> dg.AssetCheckSpec:
    description = "every shard file matches its manifest (size, sha256) and every input row is accounted for"
    if partitions is None:
        return dg.AssetCheckSpec("verified", asset=name, blocking=True, description=description)
    with warnings.catch_warnings():  # per-partition checks are a preview feature in Dagster 1.13
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec("verified", asset=name, blocking=True, description=description,
                                 partitions_def=partitions)


def _verified(name: str, result) -> dg.AssetCheckResult:
    root, corrupt = UPath(result.path), []
    folders = [root] if "sets" not in result.manifest.extra else [root / lang for lang in result.manifest.extra["sets"]]
    for folder in folders:
        try:
            verify_shard_set(folder)
        except ShardError as e:
            corrupt.append(str(e))
    return dg.AssetCheckResult(check_name="verified", asset_key=name, passed=not corrupt and result.stats.accounted,
                               metadata={"sets": len(folders), "corrupt": dg.MetadataValue.json(corrupt),
                                         "rows_accounted": result.stats.accounted})


def shard_asset(name: str, profile: Profile) -> dg.AssetsDefinition:
    spec, key = shard_set(name), asset_name(name)
    partitions = shard_partitions(profile, spec)
    n_chunks = chunk_count(profile, spec)
    optional = spec.partitioning == "language"  # WIT: skipped while wit_filtered has not written its rows

    @dg.asset(name=key, group_name=GROUP, partitions_def=partitions, deps=list(spec.deps), code_version="1",
              # a skipped WIT partition yields nothing, and a check cannot be left out: WIT verifies in the body
              check_specs=[] if optional else [_verified_spec(key, partitions)], kinds={"arrow"},
              output_required=not optional,
              description=f"{spec.paper_name}: {spec.description}")
    def _shards(context: dg.AssetExecutionContext, lake: LakeResource):
        store = lake.get()
        lang, chunk = partition_of(context.partition_key) if partitions is not None else (None, 0)
        try:
            result = build_shards(name, profile, store, lang, chunk, log=context.log.info)
        except ShardInputMissing as e:
            if not optional:
                raise
            context.log.warning(f"{key} [{lang}] skipped: {e}")
            return
        extra = {"lang": lang} if lang else {}
        if n_chunks > 1:
            extra["chunk"] = f"{chunk} of {n_chunks}"
        check = _verified(key, result)
        if optional and not check.passed:
            raise ShardError(f"{key} [{lang}] failed verification: {check.metadata}")
        yield materialize_result(result, **extra)
        if not optional:
            yield check

    return _shards


def mixtures_asset(profile: Profile, shard_keys: list[str], undefined: dict[str, str] | None = None
                   ) -> dg.AssetsDefinition:
    @dg.asset(name=MIXTURES, group_name=GROUP, deps=shard_keys, code_version="1", kinds={"json"},
              # not blocking: a stage naming a set that is not there yet (WIT before wit_filtered exists)
              # must not fail the run that resolves the others; the trainer calls check_mixture itself
              check_specs=[dg.AssetCheckSpec("mixtures", asset=MIXTURES,
                                             description="every dataset a stage names has shards in every "
                                                         "partition, and their files match the manifests")],
              description="What each training stage samples from: the profile's stage mixtures resolved against "
                          "the shard sets (rows, data versions, sampling probabilities)")
    def stage_mixtures(context: dg.AssetExecutionContext, lake: LakeResource):
        mixed = resolve_mixtures(profile, lake.get(), log=context.log.info)
        named = {d for m in profile.stages.values() for d in m.datasets}
        why = [reason for d, reason in (undefined or {}).items() if d in named]  # why those sets have no shards
        yield materialize_result(mixed.result, stages=sorted(profile.stages), problems=mixed.problems + why)
        yield dg.AssetCheckResult(check_name="mixtures", asset_key=MIXTURES, passed=not mixed.problems,
                                  metadata=stats_metadata({"problems": mixed.problems + why,
                                                           "stages": len(profile.stages)}))

    return stage_mixtures


def shard_assets(profile: Profile, defined: Sequence[dg.AssetsDefinition] | None = None) -> list[dg.AssetsDefinition]:
    """A shards asset per set whose input exists, and the stage mixtures over them.

    A translated set needs its dataset among the profile's `translation.datasets`. Given the other assets of
    the code location (`defined`), a set whose upstream asset is not among them is left out with a logged
    message (WIT, until the `wit_filtered` asset exists), and the mixtures check says why it has no shards."""
    known = None if defined is None else {k.to_user_string() for a in defined for k in a.keys}
    names, undefined = [], {}
    for name, spec in SHARD_SETS.items():
        if spec.partitioning == "translated" and spec.translated not in profile.translation.datasets:
            undefined[name] = f"{asset_name(name)} is not defined: profile {profile.name} does not translate {spec.translated}"
            continue
        missing = [d for d in spec.deps if known is not None and d not in known]
        if missing:
            undefined[name] = f"{asset_name(name)} is not defined: its upstream asset {missing} does not exist yet"
            logging.getLogger(__name__).warning(undefined[name])
            continue
        names.append(name)
    assets = [shard_asset(n, profile) for n in names]
    return assets + [mixtures_asset(profile, [asset_name(n) for n in names], undefined)]

