"""The entry function of a training stage, `run_stage`, shared by the `stage1..3` assets (through the CLI,
launched with Dagster Pipes) and by `python -m pipeline.train --stage N`.

It decides whether there is anything to train. A stage's *data version* is a hash of what the trained
weights depend on: the shard sets the stage's mixture reads (their manifest digests) and the weights, the
training settings of the stage, the model's shape and LoRA, the base models (EVA, Llama) and, for
stage N > 1, stage N-1's data version. `training/stageN/run.json` records the version being trained:

- `final/train.json` carries the same version: nothing to do, the stored result is returned (no torch);
- `run.json` carries the same version but the stage did not finish: the recipe resumes from the latest
  checkpoint (bit-exact);
- otherwise the folder is cleared and the stage trains from stage N-1's weights.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from pipeline.config import ConfigError, ModelSettings, Profile
from pipeline.lake import Lake, build_manifest, write_text_atomic
from pipeline.stats import StepResult, StepStats
from pipeline.training.env import launch_rank

STAGE_DIR = "training"
RUN_FILE = "run.json"
FINAL_DIR, WEIGHTS_FILE, TRAIN_FILE, CURVE_FILE = "final", "trainable.safetensors", "train.json", "loss.png"
VERSION = "1"  # bump when the recipe changes what a stage's weights are


class ShardRows:
    """The rows of one shard set in every language it has (re-iterable; each file verified as it is read)."""

    def __init__(self, folders: list):
        self.folders = folders

    def __iter__(self):
        from pipeline.shards.reader import read_shard_set

        for folder in self.folders:
            yield from read_shard_set(folder)


def stage_dir(lake: Lake, stage_no: int, runs: str = STAGE_DIR) -> Path:
    """`<lake>/<runs>/stageN`: `training/` for the pipeline's stages, elsewhere for ablation runs."""
    root = lake.path(*runs.split("/"), f"stage{stage_no}")
    if getattr(root, "protocol", "") not in ("", "file", "local"):
        raise ConfigError(f"lake_root {lake.root}: training writes DeepSpeed checkpoints to a local folder; "
                          f"use a local or mounted lake on the training machine")
    return Path(root.path)


def model_settings(profile: Profile, lake: Lake) -> ModelSettings:
    """The profile's model settings with `{lake}` expanded to this lake's local root."""
    return profile.model.in_lake(str(Path(lake.root.path)))


def _model_identity(path: str | None) -> Any:
    """What identifies a base model: a hub id or open_clip tag as it is; a local file or folder by its
    files' names, sizes and modification times (hashing 16 GB of Llama on every check is not worth it)."""
    if not path:
        return None
    p = Path(path)
    if not p.exists():
        return path
    # the manifest the model asset writes beside the files says nothing about the weights
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file() and f.name != "manifest.json")
    return [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]


def stage_datasets(profile: Profile, lake: Lake, stage_no: int):
    """(datasets for the recipe, the resolved stage) from the Arrow shards, as the shard step resolves the
    profile's mixture (`pipeline.shards.mixture.check_mixture`: a dataset without shards is an error that
    names it)."""
    from pipeline.shards.mixture import check_mixture

    stages = check_mixture(profile, lake)
    key = f"stage{stage_no}"
    if key not in stages:
        raise ConfigError(f"stages.{key}: this profile gives stage {stage_no} no mixture")
    resolved = stages[key]
    datasets = {e.dataset: ShardRows([lake.path(*s.path.split("/")) for s in e.sets]) for e in resolved.entries}
    return datasets, resolved


def read_final(lake: Lake, stage_no: int, runs: str = STAGE_DIR) -> dict[str, Any] | None:
    path = stage_dir(lake, stage_no, runs) / FINAL_DIR / TRAIN_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def data_version(profile: Profile, lake: Lake, stage_no: int, resolved, prev_runs: str = STAGE_DIR) -> str:
    settings = model_settings(profile, lake)
    prev = None
    if stage_no > 1:
        done = read_final(lake, stage_no - 1, prev_runs)
        if not done or "data_version" not in done:
            raise ConfigError(f"stage {stage_no} starts from stage {stage_no - 1}'s weights: "
                              f"{stage_dir(lake, stage_no - 1, prev_runs) / FINAL_DIR / TRAIN_FILE} is missing (train stage "
                              f"{stage_no - 1} first)")
        prev = done["data_version"]
    blob = {
        "version": VERSION, "stage": stage_no, "previous": prev,
        "data": {e.dataset: {"weight": e.weight, "sets": sorted(s.digest for s in e.sets)} for e in resolved.entries},
        "stage_settings": settings.stages[stage_no].model_dump(mode="json", exclude={"save_every", "log_every"}),
        "model": settings.model_dump(mode="json", include={"vision", "lora", "pad_token", "image_token", "dtype"}),
        "llm": _model_identity(settings.llm), "vision_weights": _model_identity(settings.vision.pretrained),
        "deepspeed": Path(settings.deepspeed_config).name,
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:24]


def loss_curve_png(losses: list, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
    ax.plot([s for s, _ in losses], [l for _, l in losses], lw=1.2)
    ax.set_xlabel("optimiser step"), ax.set_ylabel("loss"), ax.set_title(title), ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def _result(folder: Path, record: dict, cached: bool) -> StepResult:
    stats = StepStats(step=f"train_stage{record['stage']}", unit="samples")
    stats.items = stats.rows_in = stats.rows_kept = record.get("samples", 0)
    stats.seconds = 0.0 if cached else record.get("seconds", 0.0)
    losses = record.get("losses") or []
    window = max(1, len(losses) // 5)
    stats.add(steps=record["steps"], tokens=record.get("tokens", 0),
              tokens_per_s=record.get("tokens", 0) / record["seconds"] if record.get("seconds") else 0.0,
              trained_samples_per_s=record.get("samples", 0) / record["seconds"] if record.get("seconds") else 0.0)
    if losses:
        stats.add(loss_first=sum(l for _, l in losses[:window]) / window,
                  loss_last=sum(l for _, l in losses[-window:]) / window)
    stats.counters["cached"] = cached
    manifest = build_manifest(folder, {WEIGHTS_FILE: None, TRAIN_FILE: None, CURVE_FILE: None},
                              extra={"stage": record["stage"], "data_version": record["data_version"]})
    return StepResult(str(folder), manifest, stats)


def run_stage(profile: Profile, lake: Lake, stage_no: int, resume: bool = True, max_steps: int | None = None,
              progress: bool = True, on_step=None, runs: str = STAGE_DIR, prev_runs: str | None = None,
              seed: int | None = None) -> StepResult:
    """Train stage `stage_no` unless its weights for the current inputs exist; resume a stage cut short.

    `runs`: the lake folder of the stage folders (`training`); `prev_runs`: where stage N-1 is (default:
    `runs`); `seed`: overrides the stage's seed (the ablation's repeats)."""
    prev_runs = prev_runs or runs
    if seed is not None:
        stages = dict(profile.model.stages)
        stages[stage_no] = stages[stage_no].model_copy(update={"seed": seed})
        profile = profile.model_copy(update={"model": profile.model.model_copy(update={"stages": stages})})
    settings = model_settings(profile, lake)
    if stage_no not in settings.stages:
        raise ConfigError(f"model.stages: no stage {stage_no}; the profile defines {sorted(settings.stages)}")
    datasets, resolved = stage_datasets(profile, lake, stage_no)
    version = data_version(profile, lake, stage_no, resolved, prev_runs)
    out = stage_dir(lake, stage_no, runs)
    done = read_final(lake, stage_no, runs)
    complete = done and done.get("steps") == settings.stages[stage_no].steps  # not a --max-steps trial
    if complete and done.get("data_version") == version and (out / FINAL_DIR / WEIGHTS_FILE).is_file():
        return _result(out / FINAL_DIR, done, cached=True)

    # only global rank 0 prepares the folder; the others touch it only after the process group is up
    # (inside train_stage), which waits for rank 0 to get there
    if launch_rank() == 0:
        run = out / RUN_FILE
        started_for = json.loads(run.read_text()).get("data_version") if run.is_file() else None
        if started_for != version or not resume:
            shutil.rmtree(out, ignore_errors=True)  # checkpoints of other inputs cannot be resumed from
            out.mkdir(parents=True, exist_ok=True)
            write_text_atomic(run, json.dumps({"data_version": version, "stage": stage_no}))
        shutil.rmtree(out / FINAL_DIR, ignore_errors=True)  # `final/` appears only when the stage completes

    from pipeline.training.recipe import train_stage  # torch and DeepSpeed only when there is work

    init = None
    if stage_no > 1:
        init = stage_dir(lake, stage_no - 1, prev_runs) / FINAL_DIR / WEIGHTS_FILE
    result = train_stage(settings, stage_no, datasets, out, init_weights=init, resume=resume, max_steps=max_steps,
                         progress=progress, on_step=on_step, summary={"data_version": version})
    if result.manifest is None:  # ranks > 0 report nothing
        return result
    record = json.loads((out / FINAL_DIR / TRAIN_FILE).read_text())
    loss_curve_png(record["losses"], out / FINAL_DIR / CURVE_FILE, f"stage {stage_no}")
    return _result(out / FINAL_DIR, record, cached=False)
