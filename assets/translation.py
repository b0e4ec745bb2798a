"""Groups `models` and `translation`: the NLLB model, the translated datasets, MMMU back-translation.

Translated assets are partitioned by target language, and large datasets also by chunk of rows
(`translation.chunks` in the profile: a `chunk` x `lang` multi-partition). Each partition goes through
the translation memory, so an unchanged re-run makes zero model calls. Three asset checks guard every partition:
structure (blocking: every protected span survives), language identification and outliers.
"""
from typing import NamedTuple

import dagster as dg
import sacrebleu

from assets.metadata import md_table, stats_metadata
from pipeline.config import Profile
from pipeline.languages import SOURCE_LANG
from pipeline.corpora.mmmu import parse_options
from pipeline.translation import nllb, quality
from pipeline.translation.datasets import (DATASETS, DatasetSpec, chunk_keys, partition_folder, read_rows,
                                          rows_in_chunk, translate_rows, translate_texts, write_rows)
from resources import LakeResource, TranslatorResource

MODEL = "nllb_model"


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


def nllb_model_asset(profile: Profile) -> dg.AssetsDefinition:
    settings = profile.translation

    @dg.asset(name=MODEL, group_name="models", code_version="1", kinds={"ctranslate2"},
              description=f"NLLB converted to CTranslate2 ({settings.quantization}); toy profile: trained offline first")
    def nllb_model(context: dg.AssetExecutionContext, lake: LakeResource, translator: TranslatorResource):
        root = lake.get().model("nllb")
        metadata = {}
        if settings.model == "toy":
            from pipeline.toy.nllb import ensure_toy_model  # the toy builder: trains offline once, cached

            hf_dir, stats, chrf = ensure_toy_model(root, settings.toy_nllb, log=context.log.info)
            metadata.update(stats_metadata(stats))
            metadata["chrf_min_eng_to_x"] = min(chrf["eng_to_x"].values())
            metadata["chrf"] = dg.MetadataValue.json(chrf)
        else:
            hf_dir = nllb.download_nllb(settings.model)  # paper profile: needs the network (and HF_TOKEN)
        ct2_dir = nllb.convert_to_ctranslate2(hf_dir, translator.model_dir(lake.get()), settings.quantization)
        fingerprint = nllb.model_fingerprint(ct2_dir)
        return dg.MaterializeResult(
            metadata={**metadata, "path": str(ct2_dir), "fingerprint": fingerprint,
                      "quantization": settings.quantization},
            data_version=dg.DataVersion(fingerprint),
        )

    return nllb_model


def _checks(name: str) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec("structure", asset=name, blocking=True,
                          description="every <image>, URL, code span, number and newline of the source survives"),
        dg.AssetCheckSpec("language", asset=name, description="share of outputs identified (lingua) as the target language"),
        dg.AssetCheckSpec("outliers", asset=name, description="length-ratio and repetition outliers"),
    ]


def _check_results(name: str, spec: DatasetSpec, source_rows, rows, lang: str, threshold: float):
    pairs = [(s, t) for src, out in zip(source_rows, rows) for s, t in zip(spec.texts(src), spec.texts(out))]
    structure = quality.check_structure(pairs)
    yield dg.AssetCheckResult(check_name="structure", asset_key=name, passed=structure.passed,
                              metadata=stats_metadata(structure.to_metadata()))
    language = quality.LanguageIdentifier().check_language({lang: [t for _, t in pairs]}, threshold)
    yield dg.AssetCheckResult(check_name="language", asset_key=name, passed=language.passed,
                              severity=dg.AssetCheckSeverity.WARN, metadata=stats_metadata(language.to_metadata()))
    outliers = quality.find_outliers((s, t, lang) for s, t in pairs)
    yield dg.AssetCheckResult(check_name="outliers", asset_key=name, passed=outliers.passed,
                              severity=dg.AssetCheckSeverity.WARN, metadata=stats_metadata(outliers.to_metadata()))


def translated_asset(spec: DatasetSpec, profile: Profile) -> dg.AssetsDefinition:
    name = f"translated_{spec.name}"

    n_chunks = profile.translation.chunk_count(spec.name)
    per = "one partition per language" if n_chunks == 1 else f"{n_chunks} chunks of rows per language"

    @dg.asset(name=name, group_name="translation", partitions_def=translation_partitions(profile, spec.name),
              deps=[*spec.sources, MODEL], code_version="1", check_specs=_checks(name), kinds={"ctranslate2"},
              description=f"{spec.paper_name}: {spec.name} translated with NLLB, {per}")
    def _translated(context: dg.AssetExecutionContext, lake: LakeResource, translator: TranslatorResource):
        (lang, chunk), store = partition_of(context.partition_key), lake.get()
        rows = rows_in_chunk(spec, spec.load(store), chunk, n_chunks)  # loads every row, keeps this chunk's
        engine = translator.open_translator(store)
        with translator.open_memory(store, engine) as memory:
            out, stats = translate_rows(spec, rows, lang, engine, memory, log=context.log.info)
        folder = partition_folder(store, spec.name, lang, chunk, n_chunks)
        manifest = write_rows(folder, out, spec.fmt, extra=stats.to_dict())
        sample = [{"source": s, "translation": t} for r, o in zip(rows[:3], out[:3])
                  for s, t in list(zip(spec.texts(r), spec.texts(o)))[:2]]
        yield dg.MaterializeResult(
            metadata={**stats_metadata(stats.to_dict()), "lang": lang, "chunk": f"{chunk} of {n_chunks}",
                      "path": str(folder), "sample": md_table(sample)},
            data_version=dg.DataVersion(manifest.digest()),
        )
        yield from _check_results(name, spec, rows, out, lang, profile.translation.langid_threshold)

    return _translated


def backtranslation_asset(profile: Profile) -> dg.AssetsDefinition:
    n_chunks = profile.translation.chunk_count("mmmu")  # partitioned like translated_mmmu, partition for partition

    @dg.asset(name="mmmu_backtranslated", group_name="translation",
              partitions_def=translation_partitions(profile, "mmmu"), deps=["translated_mmmu"], code_version="1",
              description="MMMU Multi translated back into English, with chrF against the original (paper, Table 1)")
    def mmmu_backtranslated(context: dg.AssetExecutionContext, lake: LakeResource, translator: TranslatorResource):
        (lang, chunk), store = partition_of(context.partition_key), lake.get()
        spec = DATASETS["mmmu"]
        rows = read_rows(partition_folder(store, "mmmu", lang, chunk, n_chunks))
        texts = [t for r in rows for t in spec.texts(r)]
        originals = [t for r in rows for t in (r["source_question"], *parse_options(r["source_options"]))]
        engine = translator.open_translator(store)
        with translator.open_memory(store, engine, src_lang=lang) as memory:
            back = translate_texts(texts, SOURCE_LANG, engine, memory, src_lang=lang, log=context.log.info)
        chrf = sacrebleu.corpus_chrf(back, [originals]).score
        out, it = [], iter(back)
        for r in rows:
            n = len(spec.texts(r))
            vals = [next(it) for _ in range(n)]
            out.append({**r, "question": vals[0], "options": str(vals[1:]), "lang": SOURCE_LANG,
                        "via_lang": lang})
        folder = partition_folder(store, "mmmu_back", lang, chunk, n_chunks)
        manifest = write_rows(folder, out, "parquet", extra={"chrf": chrf})
        return dg.MaterializeResult(
            metadata={"chrf_vs_original": round(chrf, 2), "questions": len(rows), "path": str(folder),
                      "sample": md_table([{"original": o, "back": b} for o, b in list(zip(originals, back))[:4]])},
            data_version=dg.DataVersion(manifest.digest()),
        )

    return mmmu_backtranslated


def translation_assets(profile: Profile) -> list[dg.AssetsDefinition]:
    assets = [nllb_model_asset(profile)]
    assets += [translated_asset(DATASETS[name], profile) for name in profile.translation.datasets]
    if "mmmu" in profile.translation.datasets:
        assets.append(backtranslation_asset(profile))
    return assets
