"""Jobs, the scheduled re-translation and the sensor that reacts to new raw data."""
import json

import dagster as dg

from pipeline.config import Profile
from pipeline.translation.datasets import DATASETS

TRANSLATION_JOB = "retranslate"


def translation_job(profile: Profile):
    return dg.define_asset_job(
        TRANSLATION_JOB,
        selection=dg.AssetSelection.groups("translation"),
        description="Translate every dataset into one language (a partition); memory hits make unchanged data free",
    )


def retranslation_schedule(profile: Profile) -> dg.ScheduleDefinition:
    @dg.schedule(name="retranslate_schedule", cron_schedule=profile.translation.schedule, job_name=TRANSLATION_JOB,
                 description="Re-translate all languages; only new or changed sentences reach the model")
    def _schedule(context: dg.ScheduleEvaluationContext):
        # the tick time makes the run keys unique per tick (the daemon de-duplicates on them)
        tick = context.scheduled_execution_time.isoformat()
        for lang in profile.languages:
            yield dg.RunRequest(run_key=f"{tick}-{lang}", partition_key=lang)

    return _schedule


def raw_data_sensor(profile: Profile) -> dg.SensorDefinition:
    """When a raw source is materialised, translate the datasets made from it into every language."""
    by_source: dict[str, list[str]] = {}
    for name in profile.translation.datasets:
        for source in DATASETS[name].sources:
            by_source.setdefault(source, []).append(f"translated_{name}")

    @dg.sensor(name="translate_new_raw_data", job_name=TRANSLATION_JOB, minimum_interval_seconds=60,
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
        targets = sorted({t for source in changed for t in by_source[source]})
        stamp = "-".join(f"{s}{i}" for s, i in sorted(changed.items()))
        context.update_cursor(json.dumps({**seen, **changed}))
        return [dg.RunRequest(run_key=f"{stamp}-{lang}", partition_key=lang,
                              asset_selection=[dg.AssetKey(t) for t in targets]) for lang in profile.languages]

    return _sensor
