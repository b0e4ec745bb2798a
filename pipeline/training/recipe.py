"""One training recipe for the three stages, driven by the profile (`Profile.model`), on DeepSpeed.

    setup:  distributed env (one process: RANK/WORLD_SIZE/... set here; several: deepspeed/torchrun),
            model from `build_model`, stage N-1's trainable weights ("load weights"), AdamW with decay on
            >= 2-D weights only, warmup + cosine to min_lr, `deepspeed.initialize` with the JSON config
            (ZeRO-2 default; bf16 on GPU, fp32 + gloo on CPU), then "resume" from the latest checkpoint.
    train:  each micro-batch from ONE dataset drawn by the mixture's weights; gradient accumulation and
            clipping by DeepSpeed; tqdm, TensorBoard, tokens/s and samples/s.
    save:   every `save_every` optimiser steps and at the end: DeepSpeed checkpoint of the trainable
            weights + optimiser + scheduler (frozen weights excluded), per-rank data position and RNG, and
            the trainable weights as safetensors; the final ones in `final/trainable.safetensors`.

Bad input fails before any step with a message naming the file or key: a trainable-weights file from
another model shape, an unknown DeepSpeed key, a mixture naming an absent dataset.
"""
from __future__ import annotations

import json
import math
import os
import random
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from pipeline.config import REPO_ROOT, ConfigError, ModelSettings, StageSettings
from pipeline.lake import build_manifest, write_text_atomic
from pipeline.model.minigpt import CheckpointMismatch, MiniGPT, build_model, resolve_dtype
from pipeline.model.weights import check_trainable, load_trainable, save_trainable
from pipeline.stats import StepResult, StepStats
from pipeline.training.data import Collator, MixtureLoader, RowSource, check_mixture

CKPT_DIR, FINAL_DIR, TB_DIR = "checkpoints", "final", "tensorboard"
WEIGHTS_FILE = "trainable.safetensors"

#: top-level DeepSpeed keys this recipe accepts (deepspeed itself ignores unknown ones silently)
DEEPSPEED_KEYS = frozenset({
    "train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "gradient_clipping",
    "optimizer", "scheduler", "fp16", "bf16", "amp", "torch_autocast", "zero_optimization",
    "zero_allow_untested_optimizer", "zero_force_ds_cpu_optimizer", "steps_per_print", "wall_clock_breakdown",
    "memory_breakdown", "dump_state", "prescale_gradients", "gradient_predivide_factor", "sparse_gradients",
    "communication_data_type", "seq_parallel_communication_data_type", "data_types", "activation_checkpointing",
    "flops_profiler", "comms_logger", "tensorboard", "wandb", "csv_monitor", "checkpoint", "aio",
    "elasticity", "compile", "timers", "load_universal_checkpoint", "use_node_local_storage",
    "graph_harvesting", "disable_allgather", "mics_shard_size", "mics_hierarchical_params_gather",
})
#: keys the recipe sets from the stage settings (a config file that sets them is overridden, not trusted)
RECIPE_KEYS = ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "gradient_clipping", "bf16", "fp16")


# ---------------------------------------------------------------------------- config and environment
def deepspeed_config(path: str | Path, stage: StageSettings, bf16: bool) -> dict[str, Any]:
    """The JSON config, checked key by key, with the stage's batch, accumulation, clipping and precision."""
    path = Path(path) if Path(path).is_absolute() else REPO_ROOT / path
    try:
        cfg = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"model.deepspeed_config: {path} does not exist") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not valid JSON ({err})") from None
    unknown = sorted(set(cfg) - DEEPSPEED_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown DeepSpeed key(s) {unknown}; accepted: {sorted(DEEPSPEED_KEYS)}")
    if "optimizer" in cfg or "scheduler" in cfg:
        raise ConfigError(f"{path}: 'optimizer'/'scheduler' come from the recipe (AdamW, warmup + cosine); "
                          f"remove them")
    zero = cfg.get("zero_optimization", {})
    from deepspeed.runtime.zero.config import DeepSpeedZeroConfig

    try:
        DeepSpeedZeroConfig(**zero)
    except Exception as err:  # pydantic: name each bad key on one line
        errors = getattr(err, "errors", lambda: [])()
        detail = "; ".join(f"zero_optimization.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors) or str(err)
        raise ConfigError(f"{path}: {detail}") from None
    cfg.update(train_micro_batch_size_per_gpu=stage.batch_size, gradient_accumulation_steps=stage.accumulation,
               gradient_clipping=stage.grad_clip, bf16={"enabled": bf16}, fp16={"enabled": False})
    cfg.setdefault("zero_allow_untested_optimizer", True)
    return cfg


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_distributed(cpu: bool) -> tuple[int, int]:
    """One process: set the env a launcher would set. Several: the launcher did. Returns (rank, world).
    An empty RANK counts as unset (a parent that ran a process group itself blanks these for its child)."""
    import deepspeed

    own = not os.environ.get("RANK")
    if own:
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=str(_free_port()))
    if not torch.distributed.is_initialized():
        for attempt in range(3):
            try:
                deepspeed.init_distributed(dist_backend="gloo" if cpu else "nccl", verbose=False)
                break
            except torch.distributed.DistNetworkError:
                # the free port we picked was taken by another process in between: pick another
                if not own or attempt == 2:
                    raise
                os.environ["MASTER_PORT"] = str(_free_port())
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


def lr_lambda(stage: StageSettings) -> Callable[[int], float]:
    """Linear warmup to lr, then cosine to min_lr, over `stage.steps` optimiser steps (a factor of lr)."""
    floor = stage.min_lr / stage.lr

    def f(step: int) -> float:
        if step < stage.warmup_steps:
            return (step + 1) / stage.warmup_steps
        t = (step - stage.warmup_steps) / max(1, stage.steps - stage.warmup_steps)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    return f


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: decay on >= 2-D trainable weights only (not biases, norms)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


# ---------------------------------------------------------------------------- checkpoint helpers
def latest_checkpoint(out_dir: Path) -> Path | None:
    latest = out_dir / CKPT_DIR / "latest"
    if not latest.is_file():
        return None
    return out_dir / CKPT_DIR / latest.read_text().strip()


def _rng_state() -> dict[str, Any]:
    state = {"python": list(random.getstate()), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _gathered(engine, zero_stage: int):
    if zero_stage == 3:
        import deepspeed
        return deepspeed.zero.GatheredParameters(list(engine.module.trainable_state().values()))
    import contextlib
    return contextlib.nullcontext()


def _save(engine, out_dir: Path, step: int, loader: MixtureLoader, rank: int, zero_stage: int,
          extra: dict) -> Path:
    tag = f"step-{step:07d}"
    ckpt = out_dir / CKPT_DIR
    with _gathered(engine, zero_stage):
        if rank == 0:
            save_trainable(engine.module.trainable_state(), ckpt / tag / WEIGHTS_FILE)
    (ckpt / tag).mkdir(parents=True, exist_ok=True)
    torch.save({"loader": loader.state(), "rng": _rng_state(), **extra}, ckpt / tag / f"rank{rank}.pt")
    # DeepSpeed writes optimiser partitions and scheduler, and `latest` last: a kill before that keeps
    # the previous checkpoint as the one to resume from
    engine.save_checkpoint(str(ckpt), tag=tag, client_state={"step": step}, exclude_frozen_parameters=True)
    return ckpt / tag


# ---------------------------------------------------------------------------- the stage
def train_stage(settings: ModelSettings, stage_no: int, datasets: Mapping[str, RowSource], out_dir: str | Path,
                init_weights: str | Path | None = None, resume: bool = True,
                on_step: Callable[[int, float], None] | None = None, progress: bool = True,
                max_steps: int | None = None, summary: Mapping[str, Any] | None = None) -> StepResult:
    """Train stage `stage_no` of `settings.stages` on `datasets` into `out_dir`.

    `init_weights`: trainable weights to start from (stage N-1's `final/trainable.safetensors`).
    `resume`: continue from `out_dir`'s latest checkpoint if there is one (bit-exact).
    `on_step(step, loss)`: called after every optimiser step (tests interrupt a run from it).
    `summary`: extra fields for `final/train.json` (the data version the run was trained for).
    """
    import deepspeed
    from tqdm import tqdm

    if stage_no not in settings.stages:
        raise ConfigError(f"model.stages: no stage {stage_no}; the profile defines {sorted(settings.stages)}")
    stage = settings.stages[stage_no]
    where = f"stages.stage{stage_no}"
    if not stage.mixture:
        raise ConfigError(f"{where}: this profile gives stage {stage_no} no mixture (stages.stage{stage_no}.datasets)")
    out = Path(out_dir)
    total_steps = min(stage.steps, max_steps or stage.steps)
    cpu = not torch.cuda.is_available()
    dtype = resolve_dtype(settings.dtype)
    if settings.threads:
        torch.set_num_threads(settings.threads)

    # -- checks that need no model: fail before building anything
    check_mixture(stage.mixture, datasets, where)
    ds_cfg = deepspeed_config(settings.deepspeed_config, stage, bf16=dtype == torch.bfloat16)
    zero_stage = int(ds_cfg.get("zero_optimization", {}).get("stage", 0))
    rank, world = init_distributed(cpu)

    # -- model, "load weights", then checks of the resume checkpoint against the model
    torch.manual_seed(stage.seed)
    random.seed(stage.seed)
    model = build_model(settings, gradient_checkpointing=stage.gradient_checkpointing)
    if init_weights is not None:
        load_trainable(model, init_weights)
    resume_from = latest_checkpoint(out) if resume else None
    if resume_from is not None:
        check_trainable(model, resume_from / WEIGHTS_FILE)

    loader = MixtureLoader(datasets, stage.mixture, stage.batch_size, seed=stage.seed + 1000 * rank, where=where)
    collate = Collator(model.tokenizer, settings.image_token, model.n_image, model.pad_id,
                       settings.vision.image_size, stage.max_text_tokens)
    optimizer = torch.optim.AdamW(param_groups(model, stage.weight_decay), lr=stage.lr, betas=(0.9, 0.999))
    engine, _, _, scheduler = deepspeed.initialize(
        model=model, optimizer=optimizer, config=ds_cfg,
        lr_scheduler=lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(stage)))

    step, losses = 0, []
    if resume_from is not None:
        _, client = engine.load_checkpoint(str(out / CKPT_DIR), tag=resume_from.name, load_module_strict=False,
                                           load_optimizer_states=True, load_lr_scheduler_states=True)
        step = int(client["step"])
        mine = torch.load(resume_from / f"rank{rank}.pt", weights_only=True)
        loader.load_state(mine["loader"])
        losses = [tuple(x) for x in mine.get("losses", [])]  # the curve so far, so the plot spans the stage
        _set_rng_state(mine["rng"])

    writer = None
    if rank == 0:
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(str(out / TB_DIR))
    stats = StepStats(step=f"train_stage{stage_no}", unit="samples")
    per_dataset: dict[str, int] = {}
    samples = tokens = 0
    window_loss, window_n = 0.0, 0
    bar = tqdm(total=total_steps, initial=step, desc=f"stage {stage_no}", disable=not (progress and rank == 0))
    engine.train()
    started = time.perf_counter()
    with stats.timed():
        while step < total_steps:
            name, rows = loader.next_batch()
            batch = {k: v.to(engine.device) for k, v in collate(rows).items()}
            loss = engine(**batch)
            engine.backward(loss)
            boundary = engine.is_gradient_accumulation_boundary()
            engine.step()
            samples += len(rows)
            tokens += int(batch["attention_mask"].sum())
            per_dataset[name] = per_dataset.get(name, 0) + len(rows)
            window_loss += float(loss.detach())
            window_n += 1
            if not boundary:
                continue
            step += 1
            step_loss = window_loss / window_n
            window_loss, window_n = 0.0, 0
            losses.append((step, step_loss))
            bar.update(1)
            if writer is not None and (step % stage.log_every == 0 or step == total_steps):
                elapsed = time.perf_counter() - started
                writer.add_scalar("train/loss", step_loss, step)
                writer.add_scalar("train/lr", scheduler.get_last_lr()[0], step)
                writer.add_scalar("train/samples_per_s", samples * world / elapsed, step)
                writer.add_scalar("train/tokens_per_s", tokens * world / elapsed, step)
                bar.set_postfix(loss=f"{step_loss:.3f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
            if step % stage.save_every == 0 or step == total_steps:
                _save(engine, out, step, loader, rank, zero_stage, {"losses": losses})
            if on_step is not None:
                on_step(step, step_loss)
    bar.close()
    if writer is not None:
        writer.close()

    final = out / FINAL_DIR
    manifest = None
    with _gathered(engine, zero_stage):
        if rank == 0:
            save_trainable(engine.module.trainable_state(), final / WEIGHTS_FILE)
    if rank == 0:
        window = max(1, len(losses) // 5)
        record = {"stage": stage_no, "steps": step, "world_size": world, "zero_stage": zero_stage,
                   "dtype": str(dtype), "losses": losses, "samples_by_dataset": per_dataset,
                   "init_weights": str(init_weights) if init_weights else None,
                   "resumed_from": str(resume_from) if resume_from else None,
                   "samples": samples * world, "tokens": tokens * world, "seconds": round(stats.seconds, 3),
                   **(summary or {})}
        write_text_atomic(final / "train.json", json.dumps(record, indent=1))
        manifest = build_manifest(final, {WEIGHTS_FILE: None, "train.json": None},
                                  extra={"stage": stage_no, "steps": step})
        stats.items = samples * world
        stats.rows_in = stats.rows_kept = samples * world
        stats.add(steps=len(losses), tokens=tokens * world,
                  tokens_per_s=tokens * world / stats.seconds if stats.seconds else 0.0)
        if losses:
            stats.add(loss_first=sum(l for _, l in losses[:window]) / window,
                      loss_last=sum(l for _, l in losses[-window:]) / window)
    if world > 1:
        torch.distributed.barrier()
    return StepResult(str(final), manifest, stats)


__all__ = ["train_stage", "deepspeed_config", "init_distributed", "lr_lambda", "param_groups",
           "latest_checkpoint", "CheckpointMismatch", "MiniGPT", "WEIGHTS_FILE", "FINAL_DIR", "CKPT_DIR"]
