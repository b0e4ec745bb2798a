"""Group `training`: the three stages of the MiniGPT model, `stage1` -> `stage2` -> `stage3` (pool `gpu`).

Each asset launches the trainer through the `trainer` resource (Dagster Pipes around `python -m
pipeline.train --stage N`): the loss streams into the run's logs, and the trainer reports the loss curve,
tokens/s, the checkpoint and a data version computed from the shard manifests, the mixture and the training
config (`pipeline.training.run.data_version`). Unchanged inputs: the trainer finds the weights already there
and trains nothing; a changed mixture changes that stage's version, and so the versions after it.
"""
import dagster as dg

from assets.metadata import code_version
from assets.models import EVA_MODEL, LLAMA_MODEL
from assets.shards import MIXTURES
from pipeline.config import Profile
from resources import LakeResource, TrainingLauncher

GROUP = "training"


def stage_key(stage_no: int) -> str:
    return f"stage{stage_no}"


def stage_asset(profile: Profile, stage_no: int) -> dg.AssetsDefinition:
    model = profile.model
    mixture = profile.stages.get(stage_key(stage_no))
    deps = [MIXTURES, EVA_MODEL, LLAMA_MODEL] + ([stage_key(stage_no - 1)] if stage_no > 1 else [])
    datasets = ", ".join(f"{k} ({v:g})" for k, v in (mixture.datasets.items() if mixture else []))

    @dg.asset(name=stage_key(stage_no), group_name=GROUP, deps=deps, pool="gpu", kinds={"deepspeed", "pytorch"},
              # the settings this stage reads: its own mixture and schedule, and the model's shape
              code_version=code_version("1", mixture, model.stages[stage_no], model.vision, model.lora,
                                        model.deepspeed_config, model.dtype),
              description=f"Stage {stage_no} of the MiniGPT model (LoRA + projection, DeepSpeed): {datasets}")
    def _stage(context: dg.AssetExecutionContext, lake: LakeResource, trainer: TrainingLauncher):
        return trainer.run(context, profile, str(lake.get().root), stage_no)

    return _stage


def training_assets(profile: Profile) -> list[dg.AssetsDefinition]:
    return [stage_asset(profile, n) for n in sorted(profile.model.stages)]
