"""The one code location: Definitions for the active profile (MMG4_CONFIG, default configs/toy.yaml)."""
from __future__ import annotations

import dagster as dg

from assets.automation import raw_data_sensor, retranslation_schedules, translation_jobs
from assets.evaluation import evaluation_assets
from assets.models import model_assets
from assets.raw import raw_assets
from assets.shards import shard_assets
from assets.training import training_assets
from assets.translation import translation_assets
from assets.wit import wit_assets
from pipeline.config import Profile, load_profile
from resources import ClipScorerResource, LakeResource, TrainingLauncher, TranslatorResource
from resources.evaluator import EvaluatorResource


def make_definitions(profile: Profile, lake_root: str | None = None) -> dg.Definitions:
    jobs = translation_jobs(profile)
    assets = [*raw_assets(profile), *model_assets(profile), *translation_assets(profile), *wit_assets(profile)]
    return dg.Definitions(
        assets=[*assets, *shard_assets(profile, assets), *training_assets(profile),
                *evaluation_assets(profile)],
        jobs=jobs,
        schedules=retranslation_schedules(profile),
        sensors=[raw_data_sensor(profile, jobs)],
        resources={
            "lake": LakeResource(root=lake_root or profile.lake_root),
            "translator": TranslatorResource(profile.translation),
            "clip_scorer": ClipScorerResource(profile.wit),
            "trainer": TrainingLauncher(),
            "evaluator": EvaluatorResource(profile),
        },
    )


defs = make_definitions(load_profile())
