"""Jobs, the scheduled re-translation and the sensor that reacts to new raw data.

One job per translated dataset (`retranslate_<dataset>`), because a Dagster job needs one partitions
definition and a chunked dataset has (chunk x language) partitions where the others have languages.
Each job has its schedule; the sensor drives all of them.
"""
import json

import dagster as dg

from assets.translation import translation_partitions
from pipeline.config import Profile
from pipeline.translation.datasets import DATASETS


def job_name(dataset: str) -> str:
    return f"retranslate_{dataset}"


def _job_assets(dataset: str) -> list[str]:
    # the back-translation reads translated_mmmu partition for partition, so it runs in the same job
    return [f"translated_{dataset}"] + (["mmmu_backtranslated"] if dataset == "mmmu" else [])


def translation_jobs(profile: Profile) -> list:
    return [
        dg.define_asset_job(
            job_name(name), selection=dg.AssetSelection.assets(*_job_assets(name)),
            partitions_def=translation_partitions(profile, name),
            description=f"Translate {name} into one language (or one chunk of it); memory hits make unchanged data free",
        )
        for name in profile.translation.datasets
    ]


def retranslation_schedules(profile: Profile) -> list[dg.ScheduleDefinition]:
    """Re-translate every partition on the profile's cron; only new or changed sentences reach the model."""

    def make(dataset: str) -> dg.ScheduleDefinition:
        keys = translation_partitions(profile, dataset).get_partition_keys()

        @dg.schedule(name=f"{job_name(dataset)}_schedule", cron_schedule=profile.translation.schedule,
                     job_name=job_name(dataset),
                     description=f"Re-translate {dataset} in every language; only new or changed sentences reach the model")
        def _schedule(context: dg.ScheduleEvaluationContext):
            # the tick time makes the run keys unique per tick (the daemon de-duplicates on them)
            tick = context.scheduled_execution_time.isoformat()
            for key in keys:
                yield dg.RunRequest(run_key=f"{tick}-{key}", partition_key=key)

        return _schedule

    return [make(name) for name in profile.translation.datasets]


def raw_data_sensor(profile: Profile, jobs: list) -> dg.SensorDefinition:
    """When a raw source is materialised, translate the datasets made from it, every partition."""
    by_source: dict[str, list[str]] = {}
    for name in profile.translation.datasets:
        for source in DATASETS[name].sources:
            by_source.setdefault(source, []).append(name)
    keys = {name: translation_partitions(profile, name).get_partition_keys() for name in profile.translation.datasets}

    @dg.sensor(name="translate_new_raw_data", jobs=jobs, minimum_interval_seconds=60,
               description="New raw rows -> translate the datasets built from them, in every language")
    def _sensor(context: dg.SensorEvaluationContext):
        seen = json.loads(context.cursor) if context.cursor else {}
        changed = {}
        for source in by_source:
            records = context.instance.fetch_materializations(dg.AssetKey(source), limit=1).records
            if records and records[0].storage_id > seen.get(source, 0):
                changed[source] = records[0].storage_id
        if not changed:
            return dg.SkipReason("no new raw materialisation")
        datasets = sorted({d for source in changed for d in by_source[source]})
        stamp = "-".join(f"{s}{i}" for s, i in sorted(changed.items()))
        context.update_cursor(json.dumps({**seen, **changed}))
        return [dg.RunRequest(run_key=f"{stamp}-{d}-{key}", job_name=job_name(d), partition_key=key)
                for d in datasets for key in keys[d]]

    return _sensor
