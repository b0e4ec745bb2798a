"""Translation assets in Dagster: partitions per language and per chunk, checks, zero-work re-runs, schedule,
sensor, CLI backfill."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import yaml

from definitions import make_definitions
from pipeline.config import ToyNllbSettings
from pipeline.lake import Lake
from pipeline.toy import lexicon
from pipeline.rows import read_rows
from pipeline.translation.datasets import DATASETS, partition_folder, read_translated
from pipeline.translation.run import memory_url, row_language
from pipeline.translation.segment import segment
from pipeline.translation.translator import Translator
from tests.conftest import small_profile

ROOT = Path(__file__).resolve().parent.parent
TINY_NLLB = {"d_model": 64, "ffn_dim": 128, "encoder_layers": 1, "decoder_layers": 1, "steps": 30,
             "warmup_steps": 5, "batch_size": 32, "log_every": 1000}
UPSTREAM = ["toy_world", "llava_instruct", "mmmu", "nllb_model"]
CHUNKS = {"llava_instruct": 2}  # llava is split into (chunk x language) partitions, mmmu is not


def _profile(root, **translation):
    p = small_profile(str(root))
    return p.model_copy(update={"translation": p.translation.model_copy(
        update={"toy_nllb": ToyNllbSettings(**TINY_NLLB), "datasets": ("llava_instruct", "mmmu"),
                "langid_threshold": 0.0, "chunks": CHUNKS, **translation})})


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("dlake")
    profile = _profile(root)
    defs = make_definitions(profile, lake_root=str(root))
    instance = dg.DagsterInstance.ephemeral()
    job = defs.resolve_implicit_global_asset_job_def()
    assert job.execute_in_process(instance=instance, asset_selection=[dg.AssetKey(k) for k in UPSTREAM]).success
    return profile, defs, instance, root


def _translate(defs, instance, dataset, key):
    return defs.resolve_job_def(f"retranslate_{dataset}").execute_in_process(instance=instance, partition_key=key)


def _meta(result, name):
    return next(e.materialization.metadata for e in result.get_asset_materialization_events()
                if e.materialization.asset_key.to_user_string() == name)


def test_partition_translates_checks_and_reruns_for_free(env):
    _, defs, instance, _ = env
    first = _translate(defs, instance, "mmmu", "fra_Latn")
    assert first.success
    md = _meta(first, "translated_mmmu")
    for key in ("segments_total", "segments_unique", "cache_hits", "model_calls", "segments_per_s"):
        assert key in md
    assert md["model_calls"].value == md["segments_unique"].value > 0
    checks = {(c.asset_key.to_user_string(), c.check_name): c for c in first.get_asset_check_evaluations()}
    assert checks[("translated_mmmu", "structure")].passed
    assert {"language", "outliers"} <= {name for _, name in checks}
    assert "chrf_vs_original" in _meta(first, "mmmu_backtranslated")

    second = _translate(defs, instance, "mmmu", "fra_Latn")
    md2 = _meta(second, "translated_mmmu")
    # same inputs, model, settings and code: the partition is reused without reading a row
    assert md2["model_calls"].value == 0 and md2["reused"].value == 1
    versions = lambda r: {e.materialization.asset_key.to_user_string(): e.materialization.tags["dagster/data_version"]
                          for e in r.get_asset_materialization_events()}
    assert versions(first) == versions(second)


def test_chunks_of_a_language_together_hold_every_row_once(env):
    profile, defs, instance, root = env
    lake = Lake.at(root)
    for chunk in ("000", "001"):
        result = _translate(defs, instance, "llava_instruct", f"{chunk}|hin_Deva")
        assert result.success
        md = _meta(result, "translated_llava_instruct")
        assert md["rows_written"].value == len(read_rows(partition_folder(lake, "llava_instruct", "hin_Deva", int(chunk), 2)))
    rows = read_translated(lake, "llava_instruct", "hin_Deva", 2)
    source = DATASETS["llava_instruct"].load(lake, 0, 1)
    assert sorted(r["id"] for r in rows) == sorted(r["id"] for r in source)
    assert all(r["lang"] == "hin_Deva" for r in rows)


def test_one_language_per_row_through_the_asset(env):
    """The toy profile's setting through Dagster: a partition holds only the rows of its language, the
    others are in the metadata as dropped with the reason, and the asset's code version changes with it."""
    profile, defs, instance, root = env
    sliced = profile.model_copy(update={"translation": profile.translation.model_copy(
        update={"one_language_per_row": ("llava_instruct",)})})
    sliced_defs = make_definitions(sliced, lake_root=str(root))
    result = _translate(sliced_defs, instance, "llava_instruct", "000|ben_Beng")
    assert result.success
    md = _meta(result, "translated_llava_instruct")
    rows = read_rows(partition_folder(Lake.at(root), "llava_instruct", "ben_Beng", 0, 2))
    source = DATASETS["llava_instruct"].load(Lake.at(root), 0, 2)
    assert rows and all(row_language(str(r["id"]), profile.languages) == "ben_Beng" for r in rows)
    assert md["rows_written"].value == len(rows) < len(source)
    assert md["reasons"].value["translated into another language (translation.one_language_per_row)"] \
        == md["rows_dropped"].value == len(source) - len(rows)
    version = lambda d: d.resolve_asset_graph().get(dg.AssetKey("translated_llava_instruct")).code_version
    assert version(sliced_defs) != version(defs)


def test_schedules_request_every_partition(env):
    profile, defs, instance, _ = env
    import datetime

    tick = datetime.datetime(2026, 11, 26, 3, 0, tzinfo=datetime.timezone.utc)
    expected = {"llava_instruct": {f"{c}|{lang}" for c in ("000", "001") for lang in profile.languages},
                "mmmu": set(profile.languages)}
    for dataset, keys in expected.items():
        schedule = defs.resolve_schedule_def(f"retranslate_{dataset}_schedule")
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=tick,
                                       repository_def=defs.get_repository_def()) as context:
            requests = list(schedule.evaluate_tick(context).run_requests)
        assert {r.partition_key for r in requests} == keys
        assert len({r.run_key for r in requests}) == len(requests), "one run key per partition and tick"
        assert schedule.cron_schedule == profile.translation.schedule


def test_sensor_reacts_to_new_raw_materialisation_once(env):
    profile, defs, instance, _ = env
    sensor = defs.resolve_sensor_def("translate_new_raw_data")
    context = dg.build_sensor_context(instance=instance, definitions=defs)
    requests = sensor.evaluate_tick(context).run_requests
    by_job = {}
    for r in requests:
        by_job.setdefault(r.job_name, set()).add(r.partition_key)
    assert by_job == {"retranslate_llava_instruct": {f"{c}|{lang}" for c in ("000", "001") for lang in profile.languages},
                      "retranslate_mmmu": set(profile.languages)}
    cursor = sensor.evaluate_tick(context).cursor
    again = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs, cursor=cursor))
    assert not again.run_requests, "nothing new since the last tick"


def test_backfill_a_chunk_from_the_command_line(env, tmp_path):
    """The README's command: `dagster asset materialize -m definitions --select ... --partition CHUNK|LANG`."""
    profile, _, _, root = env
    config = yaml.safe_load((ROOT / "configs" / "toy.yaml").read_text())
    config["lake_root"] = str(root)
    config["translation"].update(toy_nllb=TINY_NLLB, datasets=["llava_instruct", "mmmu"], chunks=CHUNKS)
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(config))
    home = tmp_path / "home"
    home.mkdir()
    run_env = {**os.environ, "MMG4_CONFIG": str(path), "DAGSTER_HOME": str(home)}
    proc = subprocess.run(["dagster", "asset", "materialize", "-m", "definitions", "--select",
                           "translated_llava_instruct", "--partition", "001|urd_Arab"],
                          cwd=ROOT, env=run_env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lake = Lake.at(root)
    out = root / "translated" / "llava_instruct" / "urd_Arab" / "chunk-001-of-002" / "rows.jsonl"
    spec = DATASETS["llava_instruct"]
    assert out.exists() and len(out.read_text().splitlines()) == len(spec.load(lake, 1, 2))
    assert not (root / "translated" / "llava_instruct" / "urd_Arab" / "chunk-000-of-002").exists()


def _seed_memory(profile, root, dataset, chunk, n, lang, text_lang):
    """Store, as the `lang` translation of every sentence in a chunk, the lexicon's `text_lang` sentence."""
    lake = Lake.at(root)
    spec = DATASETS[dataset]
    rows = spec.load(lake, chunk, n)
    wanted = {s.text for r in rows for t in spec.texts(r) for s in segment(t) if s.translate}
    reference = {row["eng_Latn"]: row[text_lang] for row in lexicon.parallel_corpus()}
    assert wanted <= reference.keys(), "the toy dataset is made of lexicon sentences"
    translator = Translator.from_settings(str(lake.model("nllb", "ct2")), profile.translation)
    with translator.open_memory(memory_url(profile.translation, lake)) as memory:
        memory.put_many([(s, lang, reference[s]) for s in sorted(wanted)])


def test_language_check_flags_outputs_in_the_wrong_language(env):
    """A partition whose outputs are in another language fails the `language` check, with examples;
    one in the right language passes. (Outputs come from the memory, so the tiny model's quality is moot.)"""
    profile, _, instance, root = env
    strict = _profile(root, langid_threshold=0.8)
    defs = make_definitions(strict, lake_root=str(root))
    _seed_memory(strict, root, "llava_instruct", 0, 2, "kor_Hang", "spa_Latn")  # Spanish posing as Korean
    _seed_memory(strict, root, "llava_instruct", 0, 2, "spa_Latn", "spa_Latn")
    results = {}
    for lang in ("kor_Hang", "spa_Latn"):
        run = _translate(defs, instance, "llava_instruct", f"000|{lang}")
        assert _meta(run, "translated_llava_instruct")["model_calls"].value == 0
        results[lang] = next(c for c in run.get_asset_check_evaluations() if c.check_name == "language")
    wrong, right = results["kor_Hang"], results["spa_Latn"]
    assert not wrong.passed and right.passed
    assert wrong.severity == dg.AssetCheckSeverity.WARN
    assert wrong.metadata["examples"].data[0]["detected"] == "spa_Latn"
    # each result is recorded as its own partition's, so the passing Spanish run does not hide the failing Korean one
    assert (wrong.partition, right.partition) == ("000|kor_Hang", "000|spa_Latn")
    key = dg.AssetCheckKey(dg.AssetKey("translated_llava_instruct"), "language")
    records = instance.event_log_storage.get_asset_check_execution_history(key, limit=50)
    by_partition = {r.event.asset_check_evaluation.partition: r.event.asset_check_evaluation.passed
                    for r in reversed(records) if r.event and r.event.asset_check_evaluation}
    assert by_partition["000|kor_Hang"] is False and by_partition["000|spa_Latn"] is True


def test_a_gpu_profile_puts_translation_in_the_gpu_pool_with_a_one_gpu_pod():
    from pipeline.config import load_profile

    paper = make_definitions(load_profile("configs/paper.yaml"))
    node = paper.resolve_asset_graph().get(dg.AssetKey("translated_mmmu"))
    assert node.pools == {"gpu"}
    tag = paper.resolve_assets_def("translated_mmmu").op.tags["dagster-k8s/config"]
    assert "nvidia.com/gpu" in str(tag)
    toy = make_definitions(load_profile("configs/toy.yaml"))
    assert toy.resolve_asset_graph().get(dg.AssetKey("translated_mmmu")).pools == set()
