"""Trainer overhead: steps/s of the full trainer (DeepSpeed ZeRO-2, mixture loader, tqdm, TensorBoard,
checkpoints) against a bare PyTorch loop on the same tiny model, the same batches and the same optimiser,
side by side in one process. Goal: ratio >= 0.9. Results: bench/results/trainer_overhead.json.

    PYTHONPATH=. python bench/trainer_overhead.py [--steps 60]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pipeline.model.minigpt import build_model  # noqa: E402
from pipeline.training.data import Collator, MixtureLoader  # noqa: E402
from pipeline.training.recipe import lr_lambda, param_groups, train_stage  # noqa: E402
from tests.training_world import datasets, model_settings, stage  # noqa: E402

MIX = {"llava": 1.0, "palo": 1.0, "captions": 1.0}


def bare_loop(settings, data, steps: int) -> float:
    st = settings.stages[1]
    torch.manual_seed(st.seed)
    model = build_model(settings)
    loader = MixtureLoader(data, st.mixture, st.batch_size, seed=st.seed)
    collate = Collator(model.tokenizer, settings.image_token, model.n_image, model.pad_id,
                       settings.vision.image_size, st.max_text_tokens)
    opt = torch.optim.AdamW(param_groups(model, st.weight_decay), lr=st.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(st))
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    started = time.perf_counter()
    for _ in range(steps):
        for _ in range(st.accumulation):
            _, rows = loader.next_batch()
            loss = model(**collate(rows)) / st.accumulation
            loss.backward()
        torch.nn.utils.clip_grad_norm_(params, st.grad_clip)
        opt.step(); sched.step(); opt.zero_grad()
    return time.perf_counter() - started


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    a = ap.parse_args()
    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="bench-trainer-"))
    settings = model_settings(work / "models", {1: stage(MIX, steps=a.steps, save_every=a.steps, log_every=10)})
    data = datasets(48)
    bare_s = bare_loop(settings, data, a.steps)
    result = train_stage(settings, 1, data, work / "run", progress=True)
    full_s = result.stats.seconds
    out = {"steps": a.steps, "micro_batch": 4, "accumulation": 2, "threads": 1,
           "bare_steps_per_s": round(a.steps / bare_s, 3), "trainer_steps_per_s": round(a.steps / full_s, 3),
           "ratio": round(bare_s / full_s, 3), "trainer_samples_per_s": result.stats.to_dict()["samples_per_s"],
           "trainer_tokens_per_s": round(result.stats.counters["tokens_per_s"], 1),
           "note": "trainer time covers the loop incl. the one checkpoint at the end; setup excluded on both"}
    Path(__file__).resolve().parent.joinpath("results", "trainer_overhead.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
