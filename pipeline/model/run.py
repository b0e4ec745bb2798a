"""Entry functions of the base-model assets (`eva_model`, `llama_model`): where each model is, checked and
described. The toy profile builds both into its lake first (`pipeline.toy.eva`, `pipeline.toy.llama`, chosen
by the assets); the paper profile fetches them from the hub (EVA through open_clip, Llama through
huggingface_hub), which needs the network and, for Llama, an accepted licence and HF_TOKEN."""
from __future__ import annotations

from pathlib import Path

from pipeline.config import ConfigError, ModelSettings
from pipeline.lake import build_manifest
from pipeline.stats import StepResult, StepStats

LLM_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json")


def fetch_llm(settings: ModelSettings) -> str:
    """A local folder of the LLM: as it is when local, else downloaded once into the hub cache."""
    if Path(settings.llm).exists():
        return settings.llm
    from huggingface_hub import snapshot_download

    return snapshot_download(settings.llm, allow_patterns=["*.json", "*.safetensors", "tokenizer*"])


def fetch_vision(settings: ModelSettings) -> str:
    """The EVA weights: a local checkpoint file as it is, else open_clip's download of the pretrained tag."""
    pretrained = settings.vision.pretrained
    if pretrained and Path(pretrained).is_file():
        return pretrained
    import open_clip

    cfg = open_clip.get_pretrained_cfg(settings.vision.model, pretrained or "")
    if not cfg:
        raise ConfigError(f"model.vision: open_clip has no pretrained tag {pretrained!r} for {settings.vision.model}")
    return open_clip.download_pretrained(cfg)


def describe_llm(folder: str | Path, stats: StepStats) -> StepResult:
    """The LLM folder's manifest (every config, tokenizer and weight file), or an error naming what is missing."""
    folder = Path(folder)
    missing = [f for f in LLM_FILES if not (folder / f).is_file()]
    weights = sorted(p.name for p in folder.glob("*.safetensors"))
    if missing or not weights:
        raise ConfigError(f"model.llm: {folder} is not a Llama checkpoint: missing {missing or ['*.safetensors']}")
    files = {name: None for name in (*LLM_FILES, *weights)}
    stats.items += 1
    return StepResult(str(folder), build_manifest(folder, files, extra={"kind": "llm"}), stats)


def describe_vision(checkpoint: str | Path, stats: StepStats) -> StepResult:
    """The EVA checkpoint's manifest (the file beside which it is written)."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise ConfigError(f"model.vision.pretrained: {checkpoint} does not exist")
    stats.items += 1
    return StepResult(str(checkpoint.parent), build_manifest(checkpoint.parent, {checkpoint.name: None},
                                                             extra={"kind": "vision", "file": checkpoint.name}), stats)
