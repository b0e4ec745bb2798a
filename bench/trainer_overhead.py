"""Trainer overhead: optimiser steps/s of the full trainer against a bare PyTorch loop doing the same work.

    PYTHONPATH=. python bench/trainer_overhead.py              # ~1-2 min on the 2-vCPU machine
    PYTHONPATH=. python bench/trainer_overhead.py --steps 60 --reps 7
    PYTHONPATH=. python bench/trainer_overhead.py --zero-stage 0 --out /tmp/zero0.json   # the trainer on ZeRO-0

Both sides train the tiny MiniGPT of `tests/training_world.py` (toy EVA + toy Llama with LoRA) on the same
three in-memory datasets, from the same seeds, with the same stage settings (micro-batch 4, accumulation 2,
AdamW, warmup + cosine, clipping, torch with 1 thread):

- **trainer**: `pipeline.training.recipe.train_stage`, i.e. DeepSpeed ZeRO-2 on CPU with gloo, the mixture
  loader, tqdm, TensorBoard, and one checkpoint (at the last step);
- **bare**: the loop a user would write by hand: the same `MixtureLoader` and `Collator`, `loss / accumulation`,
  `backward`, `clip_grad_norm_`, `AdamW.step`, `LambdaLR.step`, `zero_grad`, reading the loss as the
  trainer does.

Identical work is checked, not assumed: the script counts the model's forward calls, samples and tokens,
records the batch ids and the torch thread count seen inside `forward`, and compares the per-step losses
and gradient norms (before clipping). It fails if any of these differ.

Timing: both sides are timed over the same window, from the first micro-batch fetch to the end of the last
optimiser step (trainer: its `on_step` callback, which runs after tqdm, TensorBoard and the checkpoint).
Setup (model build, `deepspeed.initialize`) is outside the window on both sides and reported apart. Each side
first runs once untimed (warm-up: imports, DeepSpeed's CPU op, first-call costs), then the timed repetitions
alternate B T T B B T ... so that drift and other programs' load hit both alike. Each repetition builds a
fresh model and optimiser.

ratio = trainer steps/s / bare steps/s (1.0: no overhead; goal >= 0.9). Reported: the median and the range of
the per-pair ratios (one bare and one trainer repetition run next to each other), for wall time and for
the process's CPU time (less sensitive to other jobs on a shared machine), and the ratio without the
checkpoint's time. Results: bench/results/trainer_overhead.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pipeline.config import REPO_ROOT  # noqa: E402
from pipeline.model.minigpt import MiniGPT, build_model  # noqa: E402
from pipeline.training import recipe  # noqa: E402
from pipeline.training.data import Collator, MixtureLoader  # noqa: E402
from tests.training_world import datasets, model_settings, stage  # noqa: E402

MIX = {"llava": 1.0, "palo": 1.0, "captions": 1.0}
THREADS = 1
RESULTS = Path(__file__).resolve().parent / "results" / "trainer_overhead.json"


class Probe:
    """What one run did and when: installed once on the classes, so both sides pay the same (tiny) cost."""

    def __init__(self):
        self.reset()
        from deepspeed.runtime.engine import DeepSpeedEngine

        forward, next_batch, save = MiniGPT.forward, MixtureLoader.next_batch, recipe._save
        engine_step = DeepSpeedEngine.step
        probe = self

        def counted_forward(model, input_ids, attention_mask, labels=None, pixel_values=None):
            probe.forwards += 1
            probe.samples += int(input_ids.shape[0])
            probe.tokens += int(attention_mask.sum())
            probe.threads.add(torch.get_num_threads())
            return forward(model, input_ids, attention_mask, labels, pixel_values)

        def timed_next_batch(loader):
            if probe.t0 is None:
                probe.t0, probe.c0 = time.perf_counter(), time.process_time()
            name, rows = next_batch(loader)
            probe.batches.append(tuple(r["id"] for r in rows))
            return name, rows

        def timed_save(*args, **kwargs):
            started = time.perf_counter()
            try:
                return save(*args, **kwargs)
            finally:
                probe.save_s += time.perf_counter() - started

        def engine_step_with_norm(engine, *args, **kwargs):  # the trainer's gradient norm before clipping
            boundary = engine.is_gradient_accumulation_boundary()
            out = engine_step(engine, *args, **kwargs)
            if boundary and engine.get_global_grad_norm() is not None:  # None: ZeRO stage 0 does not keep it
                probe.grad_norms.append(float(engine.get_global_grad_norm()))
            return out

        MiniGPT.forward, MixtureLoader.next_batch, recipe._save = counted_forward, timed_next_batch, timed_save
        DeepSpeedEngine.step = engine_step_with_norm

    def reset(self) -> None:
        self.forwards = self.samples = self.tokens = 0
        self.threads: set[int] = set()
        self.batches: list[tuple] = []
        self.losses: list[float] = []
        self.grad_norms: list[float] = []
        self.t0 = self.c0 = None
        self.t1 = self.c1 = None
        self.save_s = 0.0

    def step_done(self, loss: float) -> None:
        self.losses.append(loss)
        self.t1, self.c1 = time.perf_counter(), time.process_time()

    def result(self, side: str, steps: int, started: float, **extra) -> dict:
        """`started`: perf_counter() when the side began building its model (setup = until the first fetch)."""
        wall, cpu, setup_s = self.t1 - self.t0, self.c1 - self.c0, self.t0 - started
        assert len(self.losses) == steps, (side, len(self.losses), steps)
        return {"side": side, "wall_s": round(wall, 4), "cpu_s": round(cpu, 4), "steps_per_s": round(steps / wall, 3),
                "steps_per_cpu_s": round(steps / cpu, 3), "checkpoint_s": round(self.save_s, 4),
                "setup_s": round(setup_s, 3), "optimiser_steps": len(self.losses), "forwards": self.forwards,
                "samples": self.samples, "tokens": self.tokens, "threads": sorted(self.threads), **extra}


def bare_loop(settings, data, steps: int, probe: Probe) -> dict:
    st = settings.stages[1]
    started = time.perf_counter()
    torch.manual_seed(st.seed)
    random.seed(st.seed)
    model = build_model(settings, gradient_checkpointing=st.gradient_checkpointing)
    loader = MixtureLoader(data, st.mixture, st.batch_size, seed=st.seed)
    collate = Collator(model.tokenizer, settings.image_token, model.n_image, model.pad_id,
                       settings.vision.image_size, st.max_text_tokens)
    opt = torch.optim.AdamW(recipe.param_groups(model, st.weight_decay), lr=st.lr, betas=(0.9, 0.999))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, recipe.lr_lambda(st))
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    probe.reset()
    for _ in range(steps):
        step_loss = 0.0
        for _ in range(st.accumulation):
            _, rows = loader.next_batch()
            loss = model(**collate(rows))
            (loss / st.accumulation).backward()
            step_loss += float(loss.detach())
        probe.grad_norms.append(float(torch.nn.utils.clip_grad_norm_(params, st.grad_clip)))
        opt.step()
        sched.step()
        opt.zero_grad()
        probe.step_done(step_loss / st.accumulation)
    return probe.result("bare", steps, started)


def trainer(settings, data, steps: int, out: Path, probe: Probe) -> dict:
    probe.reset()
    started = time.perf_counter()
    result = recipe.train_stage(settings, 1, data, out, resume=False, progress=True, max_steps=steps,
                                on_step=lambda step, loss: probe.step_done(loss))
    # the trainer's own clock (stats.seconds) covers the same loop from just before the first fetch, plus
    # the closing of tqdm and TensorBoard: a cross-check of the window measured here
    return probe.result("trainer", steps, started, stats_seconds=round(result.stats.seconds, 4),
                        stats_samples=result.stats.items, grad_norms_compared=len(probe.grad_norms) == steps)


def check_same_work(bare: dict, full: dict, bare_seen: tuple, full_seen: tuple) -> float:
    """Exit unless both sides did the same work; returns the largest per-step difference (loss or grad norm)."""
    for key in ("optimiser_steps", "forwards", "samples", "tokens", "threads"):
        if bare[key] != full[key]:
            raise SystemExit(f"not the same work: {key} bare {bare[key]} vs trainer {full[key]}")
    (b_batches, b_losses, b_norms), (f_batches, f_losses, f_norms) = bare_seen, full_seen
    if b_batches != f_batches:
        raise SystemExit("not the same work: the two sides saw different micro-batches")
    if f_norms and len(b_norms) != len(f_norms):
        raise SystemExit(f"not the same work: {len(b_norms)} vs {len(f_norms)} gradient norms")
    worst = max(abs(a - b) for a, b in zip(b_losses + (b_norms if f_norms else []), f_losses + f_norms))
    if worst > 1e-3:
        raise SystemExit(f"not the same work: per-step losses or gradient norms differ by up to {worst:.2e}")
    return worst


def spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=60, help="optimiser steps per repetition")
    ap.add_argument("--reps", type=int, default=7, help="timed repetitions per side")
    ap.add_argument("--warmup-steps", type=int, default=5)
    ap.add_argument("--zero-stage", type=int, default=None,
                    help="run the trainer with this ZeRO stage instead of the profile's config (stage 2)")
    ap.add_argument("--out", default=str(RESULTS), help="where the JSON results go")
    a = ap.parse_args()
    torch.set_num_threads(THREADS)
    work = Path(tempfile.mkdtemp(prefix="bench-trainer-"))
    settings = model_settings(work / "models", {1: stage(MIX, steps=a.steps, save_every=a.steps, log_every=10)})
    deepspeed_used = settings.deepspeed_config
    if a.zero_stage is not None:
        deepspeed_used += f" with zero_optimization = {{stage: {a.zero_stage}}}"
        cfg = json.loads((REPO_ROOT / settings.deepspeed_config).read_text())
        cfg["zero_optimization"] = {"stage": a.zero_stage}
        (work / "deepspeed.json").write_text(json.dumps(cfg))
        settings = settings.model_copy(update={"deepspeed_config": str(work / "deepspeed.json")})
    assert settings.threads == THREADS
    data = datasets(48)
    probe = Probe()
    load0 = os.getloadavg()[0]

    # warm-up, untimed: one short run of each side
    bare_loop(settings, data, a.warmup_steps, probe)
    trainer(settings, data, a.warmup_steps, work / "warmup", probe)

    runs: list[dict] = []
    order = [("B", "T") if i % 2 == 0 else ("T", "B") for i in range(a.reps)]  # B T, T B, B T, ...
    for i, sides in enumerate(order):
        pair = {}
        for side in sides:
            if side == "B":
                pair["bare"] = bare_loop(settings, data, a.steps, probe)
                pair["bare_seen"] = (probe.batches, probe.losses, probe.grad_norms)
            else:
                pair["trainer"] = trainer(settings, data, a.steps, work / f"run{i}", probe)
                pair["trainer_seen"] = (probe.batches, probe.losses, probe.grad_norms)
        worst = check_same_work(pair["bare"], pair["trainer"], pair.pop("bare_seen"), pair.pop("trainer_seen"))
        b, t = pair["bare"], pair["trainer"]
        pair.update(rep=i, order="".join(sides), max_step_difference=worst, ratio=round(b["wall_s"] / t["wall_s"], 3),
                    ratio_cpu=round(b["cpu_s"] / t["cpu_s"], 3),
                    ratio_no_checkpoint=round(b["wall_s"] / (t["wall_s"] - t["checkpoint_s"]), 3))
        runs.append(pair)
        print(f"rep {i} {pair['order']}: bare {b['steps_per_s']:.2f} steps/s, trainer {t['steps_per_s']:.2f} "
              f"steps/s (checkpoint {t['checkpoint_s']:.3f} s), ratio {pair['ratio']:.3f}, "
              f"CPU-time ratio {pair['ratio_cpu']:.3f}", file=sys.stderr, flush=True)

    first = runs[0]
    out = {
        "what": "trainer steps/s divided by bare-loop steps/s on identical work (1.0 = no overhead; goal >= 0.9)",
        "steps": a.steps, "reps": a.reps, "warmup_steps": a.warmup_steps,
        "micro_batch": settings.stages[1].batch_size, "accumulation": settings.stages[1].accumulation,
        "threads": THREADS, "deepspeed_config": deepspeed_used,
        "per_step": {"samples": first["bare"]["samples"] // a.steps, "forwards": first["bare"]["forwards"] // a.steps,
                     "tokens": round(first["bare"]["tokens"] / a.steps, 1)},
        "ratio": spread([r["ratio"] for r in runs]),
        "ratio_cpu": spread([r["ratio_cpu"] for r in runs]),
        "ratio_no_checkpoint": spread([r["ratio_no_checkpoint"] for r in runs]),
        "bare_steps_per_s": spread([r["bare"]["steps_per_s"] for r in runs]),
        "trainer_steps_per_s": spread([r["trainer"]["steps_per_s"] for r in runs]),
        "trainer_checkpoint_s": spread([r["trainer"]["checkpoint_s"] for r in runs]),
        "setup_s": {"bare": spread([r["bare"]["setup_s"] for r in runs]),
                    "trainer": spread([r["trainer"]["setup_s"] for r in runs])},
        "same_work_checked": "optimiser steps, forward calls, samples, tokens, threads, batch ids, per-step losses "
                             "and gradient norms (<= 1e-3)",
        "max_step_difference": max(r["max_step_difference"] for r in runs),
        "machine": {"cpus": os.cpu_count(), "load_avg_start": round(load0, 2),
                    "load_avg_end": round(os.getloadavg()[0], 2),
                    "python": platform.python_version(), "torch": torch.__version__},
        "runs": runs,
    }
    Path(a.out).write_text(json.dumps(out, indent=1))
    print(json.dumps({k: v for k, v in out.items() if k != "runs"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
