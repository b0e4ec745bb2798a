"""Group `wit`: WIT filtered by NLLB-CLIP, as the paper did (text-quality filter, then cosine >= 0).

- `wit_images`: every unique image URL of raw WIT, downloaded once with img2dataset for all languages
  (WIT shows one image on many languages' pages; per-language downloads would fetch it again and again).
  The toy profile serves its images, some deliberately broken, from a loopback server.
- `wit_filtered`: one partition per language (English + the profile's ten). Scores come from a cache
  keyed by (model fingerprint, image, caption), so an unchanged re-run scores nothing and a new threshold
  re-filters without the model. Metadata: kept / dropped / quarantined, images/s, the score histogram
  with the threshold line, dropped captions with their scores; in the toy profile also how many matched
  captions were kept and mismatched ones dropped, from the toy world's ground truth.
"""
import base64
import warnings
from functools import partial

import dagster as dg

from assets.metadata import accounting_check, materialize_result
from assets.mirror import url_mirror
from assets.models import NLLB_CLIP_MODEL
from pipeline.config import Profile
from pipeline.languages import SOURCE_LANG
from pipeline.wit.images import fetch_images
from pipeline.wit.run import filter_wit_partition, partition_dir
from resources import ClipScorerResource, LakeResource

GROUP = "wit"
WIT_IMAGES = "wit_images"
WIT_FILTERED = "wit_filtered"
TOY_BAR = 0.9  # the toy acceptance: >= 90% of matched captions kept and of mismatched ones dropped


def wit_partitions(profile: Profile) -> dg.StaticPartitionsDefinition:
    """English and the profile's languages: WIT is native text in every one of them."""
    return dg.StaticPartitionsDefinition(list(dict.fromkeys((SOURCE_LANG, *profile.languages))))


def wit_images_asset(profile: Profile) -> dg.AssetsDefinition:
    @dg.asset(name=WIT_IMAGES, group_name=GROUP, code_version="1", deps=["wit"], kinds={"img2dataset"},
              check_specs=[dg.AssetCheckSpec("rows_accounted", asset=WIT_IMAGES, blocking=True,
                                             description="downloaded + failed = unique URLs; files match the manifest")],
              description="Every unique image URL of raw WIT, downloaded once for all languages (webdataset shards)")
    def wit_images(context: dg.AssetExecutionContext, lake: LakeResource):
        store = lake.get()
        with url_mirror(profile, store, context.log.info) as mirror:
            result = fetch_images(store, profile.download, mirror, log=context.log.info)
        yield materialize_result(result)
        yield accounting_check(WIT_IMAGES, store.path("wit", "images"))

    return wit_images


def _checks(partitions: dg.PartitionsDefinition, toy: bool) -> list[dg.AssetCheckSpec]:
    spec = partial(dg.AssetCheckSpec, asset=WIT_FILTERED, partitions_def=partitions)
    with warnings.catch_warnings():  # per-partition checks are a preview feature in Dagster 1.13
        warnings.simplefilter("ignore", dg.PreviewWarning)
        checks = [spec("rows_accounted", blocking=True,
                       description="kept + dropped + quarantined = read; files match the manifest")]
        if toy:
            checks.append(spec("toy_ground_truth", description=f">= {TOY_BAR:.0%} of the matched toy captions kept "
                                                               f"and of the mismatched ones dropped (toy world's truth)"))
        return checks


def _histogram(png_path) -> dg.MetadataValue:
    data = base64.b64encode(png_path.read_bytes()).decode()
    return dg.MetadataValue.md(f"![NLLB-CLIP scores and the threshold](data:image/png;base64,{data})")


def wit_filtered_asset(profile: Profile) -> dg.AssetsDefinition:
    partitions = wit_partitions(profile)
    settings = profile.wit

    # the settings that change which rows are kept are part of the code version: a new threshold in the
    # profile marks every partition stale (the re-run then re-filters from the score cache, no model)
    version = f"1-t{settings.threshold:g}-c{settings.min_caption_chars}-s{settings.min_script_share:g}"

    @dg.asset(name=WIT_FILTERED, group_name=GROUP, partitions_def=partitions, code_version=version,
              deps=[WIT_IMAGES, NLLB_CLIP_MODEL], check_specs=_checks(partitions, profile.is_toy), kinds={"pytorch"},
              description=f"WIT rows of one language: text-quality filter, then NLLB-CLIP cosine >= {settings.threshold}")
    def wit_filtered(context: dg.AssetExecutionContext, lake: LakeResource,
                     clip_scorer: dg.ResourceParam[ClipScorerResource]):
        lang, store = context.partition_key, lake.get()
        result = filter_wit_partition(lang, store, clip_scorer.engine(store), settings, log=context.log.info,
                                      languages=profile.languages)
        folder = partition_dir(store, lang)
        yield materialize_result(result, lang=lang, threshold=settings.threshold,
                                 score_histogram=_histogram(folder / "scores.png"),
                                 score_histogram_png=dg.MetadataValue.path(str(folder / "scores.png")))
        yield accounting_check(WIT_FILTERED, folder)
        if profile.is_toy:
            from pipeline.toy.wit_truth import filter_truth  # the toy world's ground truth

            truth = filter_truth(store, [lang])[lang]
            yield dg.AssetCheckResult(
                check_name="toy_ground_truth", asset_key=WIT_FILTERED, severity=dg.AssetCheckSeverity.WARN,
                passed=truth["matched_kept_share"] >= TOY_BAR and truth["mismatched_dropped_share"] >= TOY_BAR,
                metadata=truth)

    return wit_filtered


def wit_assets(profile: Profile) -> list[dg.AssetsDefinition]:
    return [wit_images_asset(profile), wit_filtered_asset(profile)]
