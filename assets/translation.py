"""Groups `models` and `translation`: the NLLB model, the translated datasets, MMMU back-translation.

Translated assets are partitioned by target language, and large datasets also by chunk of rows
(`translation.chunks` in the profile: a `chunk` x `lang` multi-partition). Each partition goes through
the translation memory, so an unchanged re-run makes zero model calls. Three asset checks guard every partition:
structure (blocking: every protected span survives), language identification and outliers.
"""
import warnings
from functools import partial
from typing import NamedTuple

import dagster as dg
import yaml

from assets.metadata import code_version, materialize_result, stats_metadata
from pipeline.config import REPO_ROOT, Profile
from pipeline.rows import chunk_keys
from pipeline.translation.datasets import DATASETS
from pipeline.translation.run import backtranslate_partition, translate_partition
from resources import LakeResource, TranslatorResource

from assets.models import NLLB_MODEL as MODEL


def translation_partitions(profile: Profile, dataset: str) -> dg.PartitionsDefinition:
    """One partition per language, or per (chunk, language) for a dataset the profile splits into chunks."""
    langs = dg.StaticPartitionsDefinition(list(profile.languages))
    n_chunks = profile.translation.chunk_count(dataset)
    if n_chunks == 1:
        return langs
    return dg.MultiPartitionsDefinition({"chunk": dg.StaticPartitionsDefinition(chunk_keys(n_chunks)), "lang": langs})


class Partition(NamedTuple):
    lang: str
    chunk: int  # index of the chunk of rows; 0 when the dataset is not split


def partition_of(key: str) -> Partition:
    """The language and chunk of a partition key ('fra_Latn' or '001|fra_Latn')."""
    if isinstance(key, dg.MultiPartitionKey):
        return Partition(key.keys_by_dimension["lang"], int(key.keys_by_dimension["chunk"]))
    return Partition(key, 0)


def _checks(name: str, partitions_def: dg.PartitionsDefinition) -> list[dg.AssetCheckSpec]:
    # per-partition checks: each language's (and chunk's) result is recorded as that partition's, so a
    # failing language cannot hide behind the one that ran last
    # (a preview feature in Dagster 1.13, verified on 1.13.28: its warning is silenced here, once)
    spec = partial(dg.AssetCheckSpec, asset=name, partitions_def=partitions_def)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return [
            spec("structure", blocking=True,
                 description="every <image>, URL, code span, number and newline of the source survives"),
            spec("language", description="share of outputs identified (lingua) as the target language"),
            spec("outliers", description="length-ratio and repetition outliers"),
        ]


_SEVERITY = {"structure": dg.AssetCheckSeverity.ERROR, "language": dg.AssetCheckSeverity.WARN,
             "outliers": dg.AssetCheckSeverity.WARN}


def _placement(profile: Profile) -> dict:
    """On a GPU profile: a slot of the `gpu` pool (so concurrent steps never share a GPU) and the pod tag
    that gives a Kubernetes run one GPU (docker/k8s/run-tags.yaml, the one place that says it)."""
    if profile.translation.device != "cuda":
        return {}
    tags = yaml.safe_load((REPO_ROOT / "docker" / "k8s" / "run-tags.yaml").read_text(encoding="utf-8"))
    return {"pool": "gpu", "op_tags": {"dagster-k8s/config": tags["translation"]["dagster-k8s/config"]}}


def _version(profile: Profile, dataset: str | None = None) -> str:
    """What a translated partition depends on besides its inputs: the decoding and the checks' bar (and, for
    a dataset translated one language per row, the languages that share its rows)."""
    t = profile.translation
    sliced = [list(profile.languages)] if dataset in t.one_language_per_row else []
    return code_version("2", t.beam_size, t.langid_threshold, *sliced)


def translated_asset(dataset: str, profile: Profile) -> dg.AssetsDefinition:
    spec, name = DATASETS[dataset], f"translated_{dataset}"
    n_chunks = profile.translation.chunk_count(dataset)
    per = "one partition per language" if n_chunks == 1 else f"{n_chunks} chunks of rows per language"
    partitions = translation_partitions(profile, dataset)

    @dg.asset(name=name, group_name="translation", partitions_def=partitions,
              deps=[*spec.sources, MODEL], code_version=_version(profile, dataset), check_specs=_checks(name, partitions),
              kinds={"ctranslate2"}, description=f"{spec.paper_name}: {dataset} translated with NLLB, {per}",
              **_placement(profile))
    def _translated(context: dg.AssetExecutionContext, lake: LakeResource,
                    translator: dg.ResourceParam[TranslatorResource]):
        (lang, chunk), store = partition_of(context.partition_key), lake.get()
        part = translate_partition(dataset, lang, store, translator.engines(store), chunk, n_chunks,
                                   log=context.log.info, languages=profile.languages)
        yield materialize_result(part.result, lang=lang, chunk=f"{chunk} of {n_chunks}")
        for check, outcome in part.checks.items():
            yield dg.AssetCheckResult(check_name=check, asset_key=name, passed=outcome.passed,
                                      severity=_SEVERITY[check], metadata=stats_metadata(outcome.metadata))

    return _translated


def backtranslation_asset(profile: Profile) -> dg.AssetsDefinition:
    n_chunks = profile.translation.chunk_count("mmmu")  # partitioned like translated_mmmu, partition for partition

    @dg.asset(name="mmmu_backtranslated", group_name="translation",
              partitions_def=translation_partitions(profile, "mmmu"), deps=["translated_mmmu"], code_version=_version(profile),
              description="MMMU Multi translated back into English, with chrF against the original (paper, Table 1)",
              **_placement(profile))
    def mmmu_backtranslated(context: dg.AssetExecutionContext, lake: LakeResource,
                            translator: dg.ResourceParam[TranslatorResource]):
        (lang, chunk), store = partition_of(context.partition_key), lake.get()
        result = backtranslate_partition(lang, store, translator.engines(store), chunk, n_chunks,
                                         log=context.log.info)
        return materialize_result(result)

    return mmmu_backtranslated


def translation_assets(profile: Profile) -> list[dg.AssetsDefinition]:
    assets = [translated_asset(name, profile) for name in profile.translation.datasets]
    if "mmmu" in profile.translation.datasets:
        assets.append(backtranslation_asset(profile))
    return assets
