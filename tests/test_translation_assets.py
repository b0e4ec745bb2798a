"""Translation assets in Dagster: a partition per language, checks, zero-work re-runs, schedule, sensor, CLI backfill."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from definitions import make_definitions
from tests.conftest import small_profile

ROOT = Path(__file__).resolve().parent.parent
TINY_NLLB = {"d_model": 64, "ffn_dim": 128, "encoder_layers": 1, "decoder_layers": 1, "steps": 30,
             "warmup_steps": 5, "batch_size": 32, "log_every": 1000}
UPSTREAM = ["toy_world", "llava_instruct", "mmmu", "nllb_model"]


def _profile(root):
    p = small_profile(str(root))
    return p.model_copy(update={"translation": p.translation.model_copy(
        update={"toy_nllb": TINY_NLLB, "datasets": ("llava_instruct", "mmmu"), "langid_threshold": 0.0})})


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("dlake")
    profile = _profile(root)
    defs = make_definitions(profile, lake_root=str(root))
    instance = dg.DagsterInstance.ephemeral()
    job = defs.resolve_implicit_global_asset_job_def()
    assert job.execute_in_process(instance=instance, asset_selection=[dg.AssetKey(k) for k in UPSTREAM]).success
    return profile, defs, instance, root


def _translate(defs, instance, lang):
    keys = [dg.AssetKey(k) for k in ("translated_llava_instruct", "translated_mmmu", "mmmu_backtranslated")]
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(instance=instance, asset_selection=keys, partition_key=lang)


def _meta(result, name):
    return next(e.materialization.metadata for e in result.get_asset_materialization_events()
                if e.materialization.asset_key.to_user_string() == name)


def test_partition_translates_checks_and_reruns_for_free(env):
    _, defs, instance, _ = env
    first = _translate(defs, instance, "fra_Latn")
    assert first.success
    md = _meta(first, "translated_llava_instruct")
    for key in ("segments_total", "segments_unique", "cache_hits", "model_calls", "segments_per_s"):
        assert key in md
    assert md["model_calls"].value == md["segments_unique"].value > 0
    checks = {(c.asset_key.to_user_string(), c.check_name): c for c in first.get_asset_check_evaluations()}
    assert checks[("translated_llava_instruct", "structure")].passed
    assert checks[("translated_mmmu", "structure")].passed
    assert {"language", "outliers"} <= {name for _, name in checks}
    assert "chrf_vs_original" in _meta(first, "mmmu_backtranslated")

    second = _translate(defs, instance, "fra_Latn")
    md2 = _meta(second, "translated_llava_instruct")
    assert md2["model_calls"].value == 0 and md2["cache_hits"].value == md["segments_unique"].value
    versions = lambda r: {e.materialization.asset_key.to_user_string(): e.materialization.tags["dagster/data_version"]
                          for e in r.get_asset_materialization_events()}
    assert versions(first) == versions(second)


def test_schedule_requests_every_language(env):
    profile, defs, instance, _ = env
    schedule = defs.resolve_schedule_def("retranslate_schedule")
    import datetime

    tick = datetime.datetime(2026, 11, 26, 3, 0, tzinfo=datetime.timezone.utc)
    with dg.build_schedule_context(instance=instance, scheduled_execution_time=tick,
                                   repository_def=defs.get_repository_def()) as context:
        requests = list(schedule.evaluate_tick(context).run_requests)
    assert sorted(r.partition_key for r in requests) == sorted(profile.languages)
    assert schedule.cron_schedule == profile.translation.schedule


def test_sensor_reacts_to_new_raw_materialisation_once(env):
    profile, defs, instance, _ = env
    sensor = defs.resolve_sensor_def("translate_new_raw_data")
    context = dg.build_sensor_context(instance=instance, definitions=defs)
    requests = sensor.evaluate_tick(context).run_requests
    assert len(requests) == len(profile.languages)
    assert {k.to_user_string() for k in requests[0].asset_selection} == {"translated_llava_instruct", "translated_mmmu"}
    cursor = sensor.evaluate_tick(context).cursor
    again = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs, cursor=cursor))
    assert not again.run_requests, "nothing new since the last tick"


def test_backfill_languages_from_the_command_line(env, tmp_path):
    """The README's command: `dagster asset materialize -m definitions --select ... --partition LANG`."""
    profile, _, _, root = env
    config = yaml.safe_load((ROOT / "configs" / "toy.yaml").read_text())
    config["lake_root"] = str(root)
    config["translation"].update(toy_nllb=TINY_NLLB, datasets=["llava_instruct", "mmmu"])
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(config))
    home = tmp_path / "home"
    home.mkdir()
    run_env = {**os.environ, "MMG4_CONFIG": str(path), "DAGSTER_HOME": str(home)}
    proc = subprocess.run(["dagster", "asset", "materialize", "-m", "definitions", "--select",
                           "translated_llava_instruct", "--partition", "urd_Arab"],
                          cwd=ROOT, env=run_env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = root / "translated" / "llava_instruct" / "urd_Arab" / "rows.jsonl"
    assert out.exists() and len(out.read_text().splitlines()) == profile.toy_world.llava_rows
