"""Group `models`: the models the pipeline runs, obtained (paper profile) or trained offline (toy profile).

This is the one place that picks a toy builder: with `translation.model: toy` the NLLB comes from
`pipeline.toy.nllb` (trained once, cached); otherwise it is downloaded. Both are then converted to
CTranslate2 by the same production step. Likewise `wit.model: toy` trains the tiny NLLB-CLIP of
`pipeline.toy.nllb_clip` (its text tower starts from the toy NLLB's encoder); otherwise the open_clip
model is downloaded once and saved into the lake. Both are then loaded and fingerprinted by the same step. The base models of the vision-language model
come the same way: `eva_model` and `llama_model` train the tiny EVA and Llama of `pipeline.toy.eva` and
`pipeline.toy.llama` into the lake where `model.vision.pretrained` and `model.llm` point (`{lake}/...`);
in the paper profile they fetch EVA01-g-14 and Llama-3-8B-Instruct from the hub.
"""
from pathlib import Path

import dagster as dg

from assets.metadata import code_version, materialize_result, md_table
from pipeline.config import ConfigError, Profile
from pipeline.model.run import describe_llm, describe_vision, fetch_llm, fetch_vision
from pipeline.toy.info import read_info
from pipeline.stats import StepStats
from pipeline.translation import nllb
from pipeline.translation.run import prepare_model
from pipeline.wit.clip import export_pretrained
from pipeline.wit.run import model_dir as clip_model_dir, prepare_clip_model
from resources import LakeResource

NLLB_MODEL = "nllb_model"
NLLB_CLIP_MODEL = "nllb_clip_model"
EVA_MODEL = "eva_model"
LLAMA_MODEL = "llama_model"


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


def nllb_clip_model_asset(profile: Profile) -> dg.AssetsDefinition:
    settings = profile.wit
    toy = settings.model == "toy"
    bar = settings.toy_quality_bar
    checks = [dg.AssetCheckSpec(
        "heldout_quality", asset=NLLB_CLIP_MODEL, blocking=True,
        description=f"on held-out toy pairs, in every language: ROC AUC of matched vs mismatched captions, and "
                    f"the shares of matched pairs scoring >= 0 and of mismatched pairs < 0, all >= {bar}")] if toy else []
    source = "a tiny NLLB-CLIP trained offline on toy scenes (text tower: the toy NLLB's encoder)" if toy \
        else f"open_clip {settings.model} ({settings.pretrained}), downloaded once into the lake"

    @dg.asset(name=NLLB_CLIP_MODEL, group_name="models", code_version="1", kinds={"pytorch"},
              deps=[NLLB_MODEL] if toy else [], check_specs=checks,
              description=f"NLLB-CLIP image-caption scorer for the WIT filter: {source}")
    def nllb_clip_model(context: dg.AssetExecutionContext, lake: LakeResource):
        store = lake.get()
        stats = StepStats(NLLB_CLIP_MODEL, unit="models")
        folder, extra, quality = clip_model_dir(store), {}, None
        if toy:
            from pipeline.toy.nllb_clip import ensure_toy_nllb_clip, quality_summary  # the toy builder

            with stats.timed():
                folder, train, quality = ensure_toy_nllb_clip(folder, store.model("nllb", "hf"),
                                                              settings.toy_nllb_clip, log=context.log.info)
            stats.counters.update({k: v for k, v in train.items() if isinstance(v, (int, float))})
            extra = {**quality_summary(quality), "auc": {lang: q["auc"] for lang, q in quality.items()},
                     "heldout_quality": md_table([{"language": lang, **q} for lang, q in quality.items()])}
        else:
            with stats.timed():
                folder = export_pretrained(settings.model, settings.pretrained, folder)  # needs the network once
        result = prepare_clip_model(folder, store, settings, stats)
        yield materialize_result(result, fingerprint=result.manifest.extra["fingerprint"], **extra)
        if toy:
            failing = {lang: {k: q[k] for k in ("auc", "matched_kept", "mismatched_dropped") if q[k] < bar}
                       for lang, q in quality.items()}
            failing = {lang: f for lang, f in failing.items() if f}
            yield dg.AssetCheckResult(
                check_name="heldout_quality", asset_key=NLLB_CLIP_MODEL, passed=not failing,
                metadata={"bar": bar, "below_bar": dg.MetadataValue.json(failing),
                          **{k: v for k, v in extra.items() if k.startswith("min_")}})

    return nllb_clip_model


def _base_model_asset(name: str, code: str, description: str, build) -> dg.AssetsDefinition:
    """An asset for one base model of the MiniGPT model: `build(context, settings, stats)` returns the
    step's result and extra metadata; the settings have `{lake}` expanded to this lake."""

    @dg.asset(name=name, group_name="models", kinds={"pytorch"}, code_version=code, description=description)
    def _model(context: dg.AssetExecutionContext, lake: LakeResource):
        store = lake.get()
        stats = StepStats(name, unit="models")
        with stats.timed():
            result, extra = build(context, store, stats)
        return materialize_result(result, **extra)

    return _model


def eva_model_asset(profile: Profile) -> dg.AssetsDefinition:
    model, toy = profile.model, profile.model.toy_eva is not None
    source = "a tiny timm Eva registered in open_clip, trained CLIP-style on toy scenes" if toy \
        else f"open_clip {model.vision.model} ({model.vision.pretrained}), downloaded once"

    def build(context, store, stats):
        settings = model.in_lake(str(store.root.path))
        if not toy:
            return describe_vision(fetch_vision(settings), stats), {}  # paper profile: needs the network once
        from pipeline.toy.eva import INFO_FILE, ensure_toy_eva  # the toy builder: trained once, cached

        if not settings.vision.pretrained or "/" not in settings.vision.pretrained:
            raise ConfigError("model.vision.pretrained: the toy profile names the checkpoint file the eva_model "
                              "asset writes, e.g. '{lake}/models/eva/open_clip_model.safetensors'")
        weights = ensure_toy_eva(Path(settings.vision.pretrained).parent, settings.vision, model.toy_eva,
                                 log=context.log.info)
        info = read_info(weights.parent / INFO_FILE) or {}
        extra = {k: info[k] for k in ("heldout_retrieval_acc", "chance", "first_loss", "last_loss") if k in info}
        return describe_vision(weights, stats), extra

    return _base_model_asset(EVA_MODEL, code_version("1", model.vision, model.toy_eva),
                             f"The frozen vision encoder of the MiniGPT model: {source}", build)


def llama_model_asset(profile: Profile) -> dg.AssetsDefinition:
    model, toy = profile.model, profile.model.toy_llama is not None
    source = "a tiny Llama with a Llama-3-style BPE tokenizer, pretrained on toy text in eleven languages" if toy \
        else f"{model.llm}, downloaded once (licence accepted, HF_TOKEN set)"

    def build(context, store, stats):
        settings = model.in_lake(str(store.root.path))
        if not toy:
            return describe_llm(fetch_llm(settings), stats), {}  # paper profile: needs the network once
        from pipeline.toy.llama import INFO_FILE, ensure_toy_llama  # the toy builder: trained once, cached

        folder = ensure_toy_llama(settings.llm, model.toy_llama, log=context.log.info)
        info = read_info(Path(folder) / INFO_FILE) or {}
        ppl = info.get("heldout_perplexity", {})
        extra = {"heldout_perplexity": ppl, "first_loss": info.get("first_loss"), "last_loss": info.get("last_loss"),
                 "perplexity_table": md_table([{"language": k, "perplexity": v} for k, v in ppl.items()])}
        return describe_llm(folder, stats), extra

    # "2": the toy recipe became an instruct one (its settings alone do not say so)
    return _base_model_asset(LLAMA_MODEL, code_version("2", model.llm, model.toy_llama),
                             f"The LLM of the MiniGPT model: {source}", build)


def model_assets(profile: Profile) -> list[dg.AssetsDefinition]:
    return [nllb_model_asset(profile), nllb_clip_model_asset(profile), eva_model_asset(profile),
            llama_model_asset(profile)]
