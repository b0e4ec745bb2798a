"""The base-model and training-stage assets through Dagster: the toy EVA and Llama built into the lake, each
stage launched with Dagster Pipes (a real subprocess running `python -m pipeline.train`), the loss and
metadata reported back, an unchanged re-run that trains nothing, a changed mixture that retrains from the
stage it touches, and a bad mixture whose error reaches the run."""
from __future__ import annotations

import json
import random

import dagster as dg
import pytest

from definitions import make_definitions
from pipeline.config import Profile
from pipeline.lake import Lake
from pipeline.shards.writer import Example, InlineImage, write_shard_set
from pipeline.toy.scenes import jpeg_bytes, make_scenes
from pipeline.toy.world import conversation, say
from tests.conftest import small_profile
from tests.training_world import EVA, LLAMA, VISION



STEPS = 4


def _profile(root, stages: dict[str, dict[str, float]]) -> Profile:
    base = small_profile(str(root)).model_dump(mode="json")
    stage = {"steps": STEPS, "batch_size": 4, "accumulation": 1, "lr": 3e-3, "min_lr": 3e-4, "warmup_steps": 1,
             "save_every": 2, "log_every": 1, "max_text_tokens": 256, "seed": 7}
    base["stages"] = {k: {"datasets": v} for k, v in stages.items()}
    base["model"].update(
        vision={**VISION.model_dump(mode="json"), "pretrained": "{lake}/models/eva/open_clip_model.safetensors"},
        llm="{lake}/models/llama", lora={"r": 4, "alpha": 8, "dropout": 0.1, "target_modules": ["q_proj", "v_proj"]},
        toy_eva=EVA.model_dump(mode="json"), toy_llama=LLAMA.model_dump(mode="json"), threads=1,
        stages={int(k[-1]): dict(stage) for k in stages})
    return Profile.model_validate(base)


def _write_shards(lake: Lake) -> None:
    """Two English caption sets and one conversation set, written as the shard step writes them."""
    rng = random.Random(0)
    scenes = make_scenes(3, 24)
    for name in ("cc_sbu", "laion"):
        examples = [Example(f"{name}/{i}", name, name, "eng_Latn", [
            {"from": "human", "value": "<image>\nDescribe the image briefly."},
            {"from": "gpt", "value": say("caption", "eng_Latn", s)}], InlineImage(jpeg_bytes(s)),
            say("caption", "eng_Latn", s)) for i, s in enumerate(scenes)]
        write_shard_set(lake.path("shards", name, "eng_Latn"), examples, target_bytes=1 << 20, extra={"lang": "eng_Latn"})
    examples = [Example(f"llava/{i}", "llava_instruct", "llava_instruct", "eng_Latn",
                        conversation(s, "eng_Latn", rng), InlineImage(jpeg_bytes(s))) for i, s in enumerate(scenes)]
    write_shard_set(lake.path("shards", "llava_instruct", "eng_Latn"), examples, target_bytes=1 << 20,
                    extra={"lang": "eng_Latn"})


def _materialize(profile: Profile, root, instance, keys: list[str], raise_on_error: bool = True):
    defs = make_definitions(profile, lake_root=str(root))
    assets = [a for a in defs.assets if a.key.to_user_string() in keys]
    resources = {k: v for k, v in defs.resources.items() if k in ("lake", "trainer")}
    return dg.materialize(assets, resources=resources, instance=instance, raise_on_error=raise_on_error)


def _metadata(instance, key: str) -> dict:
    event = instance.get_latest_materialization_event(dg.AssetKey(key))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


@pytest.fixture(scope="module")
def lake_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("train-lake")
    _write_shards(Lake.at(root))
    return root


def test_stages_train_report_and_skip_unchanged(lake_root):
    mixtures = {"stage1": {"cc_sbu": 1.0, "laion": 1.0}, "stage2": {"llava_instruct": 2.0, "cc_sbu": 1.0}}
    profile = _profile(lake_root, mixtures)
    with dg.instance_for_test() as instance:
        _materialize(profile, lake_root, instance, ["eva_model", "llama_model", "stage1", "stage2"])
        llama = _metadata(instance, "llama_model")
        assert set(llama["heldout_perplexity"]) >= {"eng_Latn", "zho_Hans"}
        first = {k: _metadata(instance, k) for k in ("stage1", "stage2")}
        for key, md in first.items():
            assert md["cached"] is False and md["steps"] == STEPS
            assert md["loss_curve"].startswith("![loss curve](data:image/png;base64,")
            assert md["tokens_per_s"] > 0
            weights = lake_root / "training" / key / "final" / "trainable.safetensors"
            assert md["checkpoint"] == str(weights) and weights.is_file()
        # stage 2 started from stage 1's weights
        record = json.loads((lake_root / "training" / "stage2" / "final" / "train.json").read_text())
        assert record["init_weights"].endswith("stage1/final/trainable.safetensors")
        mtime = (lake_root / "training" / "stage1" / "final" / "trainable.safetensors").stat().st_mtime_ns

        # unchanged inputs: both stages report the stored result and train nothing
        _materialize(profile, lake_root, instance, ["stage1", "stage2"])
        again = {k: _metadata(instance, k) for k in ("stage1", "stage2")}
        assert all(md["cached"] is True for md in again.values())
        assert {k: md["data_version"] for k, md in again.items()} == {k: md["data_version"] for k, md in first.items()}
        assert (lake_root / "training" / "stage1" / "final" / "trainable.safetensors").stat().st_mtime_ns == mtime

        # a changed stage-2 mixture retrains stage 2 only
        changed = _profile(lake_root, {**mixtures, "stage2": {"llava_instruct": 1.0, "cc_sbu": 1.0}})
        _materialize(changed, lake_root, instance, ["stage1", "stage2"])
        s1, s2 = _metadata(instance, "stage1"), _metadata(instance, "stage2")
        assert s1["cached"] is True and s1["data_version"] == first["stage1"]["data_version"]
        assert s2["cached"] is False and s2["data_version"] != first["stage2"]["data_version"]


def test_a_bad_mixture_fails_the_run_with_the_trainers_message(lake_root):
    profile = _profile(lake_root, {"stage1": {"cc_sbu": 1.0, "ci": 1.0}})  # no shards of `ci` in this lake
    with dg.instance_for_test() as instance:
        result = _materialize(profile, lake_root, instance, ["stage1"], raise_on_error=False)
        assert not result.success
        failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        text = json.dumps([str(e.event_specific_data.error) for e in failures])
        assert "ci has no shards" in text, text


@pytest.mark.slow  # two trainer processes under torchrun, each starting torch and DeepSpeed
def test_two_processes_under_torchrun_report_once_through_pipes(lake_root, tmp_path):
    from resources import TrainingLauncher

    profile = _profile(lake_root, {"stage1": {"cc_sbu": 1.0, "laion": 1.0}})
    defs = make_definitions(profile, lake_root=str(lake_root))
    assets = [a for a in defs.assets if a.key.to_user_string() in ("eva_model", "llama_model", "stage1")]
    with dg.instance_for_test() as instance:
        # other runs in this module trained stage 1 in this lake: start it over
        import shutil
        shutil.rmtree(lake_root / "training" / "stage1", ignore_errors=True)
        dg.materialize(assets, instance=instance,
                       resources={"lake": defs.resources["lake"], "trainer": TrainingLauncher(processes=2)})
        md = _metadata(instance, "stage1")
    record = json.loads((lake_root / "training" / "stage1" / "final" / "train.json").read_text())
    assert record["world_size"] == 2 and md["cached"] is False and md["loss_last"] < md["loss_first"]
