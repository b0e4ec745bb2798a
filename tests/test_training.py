"""The trainer: loss falls, kill-and-resume is bit-exact, stage hand-off, clear errors before any step."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pipeline.config import REPO_ROOT, ConfigError
from pipeline.model.minigpt import CheckpointMismatch
from pipeline.training.data import MixtureError
from pipeline.training.recipe import FINAL_DIR, WEIGHTS_FILE, train_stage
from tests.training_world import datasets, model_settings, stage

MIX = {"llava": 1.0, "palo": 1.0, "captions": 1.0}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.getbasetemp() / "models"


@pytest.fixture(scope="module")
def data():
    return datasets()


def _never(step, loss):
    raise AssertionError(f"a step ran ({step}) although the input was bad")


def _final(out: Path):
    return load_file(str(out / FINAL_DIR / WEIGHTS_FILE)), json.loads((out / FINAL_DIR / "train.json").read_text())


def test_kill_and_resume_is_bit_exact(root, data, tmp_path):
    s = model_settings(root, {1: stage(MIX, steps=6)})
    train_stage(s, 1, data, tmp_path / "straight", progress=False)
    ref_w, ref = _final(tmp_path / "straight")

    class Killed(Exception):
        pass

    def kill(step, loss):
        if step == 4:
            raise Killed()
    with pytest.raises(Killed):
        train_stage(s, 1, data, tmp_path / "killed", progress=False, on_step=kill)
    train_stage(s, 1, data, tmp_path / "killed", progress=False)
    got_w, got = _final(tmp_path / "killed")
    assert got["resumed_from"].endswith("step-0000004")
    assert [step for step, _ in got["losses"]] == [1, 2, 3, 4, 5, 6]  # the curve spans the kill
    assert got["losses"] == ref["losses"]  # same losses, bit for bit
    assert ref_w.keys() == got_w.keys()
    for k in ref_w:
        assert torch.equal(ref_w[k], got_w[k]), k


def test_loss_falls_and_stage_two_starts_from_stage_one(root, data, tmp_path):
    s = model_settings(root, {1: stage(MIX, steps=24, lr=3e-2, min_lr=3e-3, save_every=24),
                              2: stage({"palo": 1.0}, steps=1, lr=1e-12, min_lr=0.0, warmup_steps=0)})
    result = train_stage(s, 1, data, tmp_path / "s1", progress=False)
    w1, info = _final(tmp_path / "s1")
    losses = [l for _, l in info["losses"]]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first - 0.15, losses
    assert set(info["samples_by_dataset"]) == set(MIX)  # every dataset of the mixture was drawn
    assert result.stats.counters["tokens_per_s"] > 0 and (tmp_path / "s1" / "tensorboard").is_dir()
    # stage 2 "loads weights" (not a resume): starts from stage 1's trainable weights, fresh optimiser/step
    train_stage(s, 2, data, tmp_path / "s2", init_weights=tmp_path / "s1" / FINAL_DIR / WEIGHTS_FILE, progress=False)
    w2, info2 = _final(tmp_path / "s2")
    assert info2["resumed_from"] is None and info2["steps"] == 1
    for k in w1:
        assert torch.allclose(w1[k], w2[k], atol=1e-6), k
    fresh = tmp_path / "s2-fresh"
    train_stage(s, 2, data, fresh, progress=False)
    assert any(not torch.allclose(w1[k], _final(fresh)[0][k], atol=1e-3) for k in w1)


def test_bad_inputs_fail_before_any_step_naming_the_culprit(root, data, tmp_path):
    s = model_settings(root, {1: stage({"llava": 1.0, "wit_missing": 2.0}, steps=2)})
    with pytest.raises(MixtureError, match="wit_missing"):
        train_stage(s, 1, data, tmp_path / "a", progress=False, on_step=_never)

    bad_ds = tmp_path / "bad_deepspeed.json"
    bad_ds.write_text(json.dumps({"zero_optimization": {"stage": 2}, "zero_optimisation_typo": 1}))
    s = model_settings(root, {1: stage(MIX, steps=2)}, deepspeed_config=str(bad_ds))
    with pytest.raises(ConfigError, match="bad_deepspeed.json.*zero_optimisation_typo"):
        train_stage(s, 1, data, tmp_path / "b", progress=False, on_step=_never)
    bad_zero = tmp_path / "bad_zero.json"
    bad_zero.write_text(json.dumps({"zero_optimization": {"stage": 2, "overlap_comms": True}}))
    s = model_settings(root, {1: stage(MIX, steps=2)}, deepspeed_config=str(bad_zero))
    with pytest.raises(ConfigError, match="bad_zero.json.*overlap_comms"):
        train_stage(s, 1, data, tmp_path / "c", progress=False, on_step=_never)

    # weights from another model shape (LoRA r=8 instead of 4), as init weights and as a resume checkpoint
    s = model_settings(root, {1: stage(MIX, steps=1, save_every=1)})
    other = s.model_copy(update={"lora": s.lora.model_copy(update={"r": 8})})
    train_stage(other, 1, data, tmp_path / "other", progress=False)
    wrong = tmp_path / "other" / FINAL_DIR / WEIGHTS_FILE
    with pytest.raises(CheckpointMismatch, match=str(wrong)):
        train_stage(s, 1, data, tmp_path / "d", init_weights=wrong, progress=False, on_step=_never)
    with pytest.raises(CheckpointMismatch, match="step-0000001"):
        train_stage(s, 1, data, tmp_path / "other", progress=False, on_step=_never)


@pytest.mark.slow
def test_two_process_deepspeed_run_on_cpu(root, tmp_path):
    model_settings(root)  # build the toy models once, before the two processes read them
    script = tmp_path / "two.py"
    script.write_text(
        "import sys; sys.path.insert(0, %r)\n"
        "from pathlib import Path\n"
        "from tests.training_world import datasets, model_settings, stage\n"
        "from pipeline.training.recipe import train_stage\n"
        "s = model_settings(Path(%r), {1: stage({'llava': 1.0, 'palo': 1.0}, steps=3)})\n"
        "train_stage(s, 1, datasets(), Path(%r), progress=False)\n" % (str(REPO_ROOT), str(root), str(tmp_path / "run")))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(script)],
                   check=True, env=env, timeout=900)
    info = json.loads((tmp_path / "run" / FINAL_DIR / "train.json").read_text())
    assert info["world_size"] == 2 and info["steps"] == 3
    assert (tmp_path / "run" / "checkpoints" / "step-0000002" / "rank1.pt").is_file()
