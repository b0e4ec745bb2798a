"""Group `models`: the models the pipeline runs, obtained (paper profile) or trained offline (toy profile).

This is the one place that picks a toy builder: with `translation.model: toy` the NLLB comes from
`pipeline.toy.nllb` (trained once, cached); otherwise it is downloaded. Both are then converted to
CTranslate2 by the same production step.
"""
import dagster as dg

from assets.metadata import code_version, materialize_result
from pipeline.config import Profile
from pipeline.stats import StepStats
from pipeline.translation import nllb
from pipeline.translation.run import prepare_model
from resources import LakeResource

NLLB_MODEL = "nllb_model"


def nllb_model_asset(profile: Profile) -> dg.AssetsDefinition:
    settings = profile.translation

    @dg.asset(name=NLLB_MODEL, group_name="models", code_version=code_version("2", settings.model, settings.quantization, settings.toy_nllb),
              kinds={"ctranslate2"},
              description=f"NLLB converted to CTranslate2 ({settings.quantization}); toy profile: trained offline first")
    def nllb_model(context: dg.AssetExecutionContext, lake: LakeResource):
        store = lake.get()
        stats = StepStats(NLLB_MODEL, unit="models")
        extra = {}
        if settings.model == "toy":
            from pipeline.toy.nllb import ensure_toy_model  # the toy builder: trains offline once, cached

            with stats.timed():
                hf_dir, train, chrf = ensure_toy_model(store.model("nllb"), settings.toy_nllb, log=context.log.info)
            stats.counters.update({k: v for k, v in train.items() if isinstance(v, (int, float))})
            extra = {"chrf_min_eng_to_x": min(chrf["eng_to_x"].values()), "chrf": chrf}
        else:
            with stats.timed():
                hf_dir = nllb.download_nllb(settings.model)  # paper profile: needs the network (and HF_TOKEN)
        result = prepare_model(hf_dir, store, settings, stats)
        return materialize_result(result, fingerprint=result.manifest.extra["fingerprint"],
                                  quantization=settings.quantization, **extra)

    return nllb_model


def model_assets(profile: Profile) -> list[dg.AssetsDefinition]:
    return [nllb_model_asset(profile)]
