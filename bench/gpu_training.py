"""GPU training throughput: a few bf16 ZeRO-2 steps of the MiniGPT model at the paper's shapes (a
Llama-3-8B-shaped LLM with LoRA r 64 on q/v, an EVA01-g-14-shaped frozen encoder, random weights) on one
GPU, through the same pieces as the trainer (`build_vision`, `MiniGPT`, `deepspeed_config`, AdamW groups,
`deepspeed.initialize`). Reports tokens/s, peak memory and model FLOPs utilisation.

    PYTHONPATH=. python bench/gpu_training.py [--steps 6] [--seq 512] [--micro-batch 4]
    PYTHONPATH=. python bench/gpu_training.py --shape tiny      # a CPU smoke run of the same code

FLOPs per step: the LLM's dense matmuls cost 2 N per token forward and, with frozen weights, 2 N per token
backward (activation gradients only; LoRA's own are negligible); the frozen encoder runs forward only,
2 N_vision per patch token. MFU = achieved / peak bf16 dense (`--peak-tflops`, H200: 989). The usual 6 N
convention (as if every weight trained) is printed beside it. Results: bench/results/gpu_training.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pipeline.config import EvaArch, LoraSettings, ModelSettings, StageSettings, VisionSettings  # noqa: E402
from pipeline.model.minigpt import MiniGPT  # noqa: E402
from pipeline.model.vision import build_vision  # noqa: E402
from pipeline.training.recipe import deepspeed_config, init_distributed, param_groups  # noqa: E402

SHAPES = {
    # Llama-3-8B and EVA01-g-14 at 224 px (256 patches -> 64 image tokens)
    "paper": dict(hidden=4096, layers=32, heads=32, kv=8, ffn=14336, vocab=128256,
                  vision=VisionSettings(model="EVA01-g-14", pretrained=None, image_size=224)),
    "tiny": dict(hidden=64, layers=2, heads=4, kv=2, ffn=176, vocab=1024,
                 vision=VisionSettings(model="EVA-bench", pretrained=None, image_size=64,
                                       arch=EvaArch(embed_dim=32, depth=2, num_heads=2, embed_dim_out=32,
                                                    text_width=32, text_layers=1))),
}


def toy_tokenizer(folder: Path):
    """A tokenizer with the Llama-3 special tokens (the pad and image ids are all the model needs)."""
    from pipeline.toy.llama import QUICK, ensure_toy_llama
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(ensure_toy_llama(folder, QUICK, log=lambda *_: None))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=sorted(SHAPES), default="paper")
    ap.add_argument("--steps", type=int, default=6, help="timed optimiser steps (after 2 warm-up steps)")
    ap.add_argument("--seq", type=int, default=512, help="tokens per sample, image tokens included")
    ap.add_argument("--micro-batch", type=int, default=4)
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="bf16 dense peak of the GPU")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "gpu_training.json"))
    a = ap.parse_args()
    from transformers import LlamaConfig, LlamaForCausalLM
    from peft import LoraConfig, get_peft_model
    import deepspeed

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    shape = SHAPES[a.shape]
    settings = ModelSettings(vision=shape["vision"], lora=LoraSettings(r=64, alpha=16, dropout=0.05),
                             dtype="bf16" if cuda else "fp32")
    stage = StageSettings(steps=a.steps + 2, batch_size=a.micro_batch, accumulation=1, lr=1e-4, min_lr=8e-5)
    init_distributed(cpu=not cuda)

    tokenizer = toy_tokenizer(Path(tempfile.mkdtemp(prefix="bench-tok-")))
    cfg = LlamaConfig(vocab_size=shape["vocab"], hidden_size=shape["hidden"], intermediate_size=shape["ffn"],
                      num_hidden_layers=shape["layers"], num_attention_heads=shape["heads"],
                      num_key_value_heads=shape["kv"], max_position_embeddings=8192)
    with torch.device(device):
        llm = LlamaForCausalLM(cfg).to(dtype)
    llm.requires_grad_(False)
    llm = get_peft_model(llm, LoraConfig(r=64, lora_alpha=16, lora_dropout=0.05,
                                         target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    vision = build_vision(settings.vision)
    model = MiniGPT(vision, llm, tokenizer, settings).to(device=device, dtype=dtype)
    n_llm = sum(p.numel() for p in llm.parameters())
    n_vision = sum(p.numel() for p in vision.parameters())
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)

    ds_cfg = deepspeed_config(settings.deepspeed_config, stage, bf16=cuda)
    optimizer = torch.optim.AdamW(param_groups(model, stage.weight_decay), lr=stage.lr)
    engine, _, _, _ = deepspeed.initialize(model=model, optimizer=optimizer, config=ds_cfg)

    b, n_img, size = a.micro_batch, model.n_image, settings.vision.image_size
    ids = torch.randint(300, shape["vocab"], (b, a.seq), device=device)
    ids[(ids == model.image_id) | (ids == model.pad_id)] = 300  # placeholders only where the image goes
    ids[:, 1:1 + n_img] = model.image_id
    labels = ids.clone()
    labels[:, : a.seq // 2] = -100
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels,
             "pixel_values": torch.randn(b, 3, size, size, device=device, dtype=dtype)}

    def step() -> None:
        loss = engine(**batch)
        engine.backward(loss)
        engine.step()

    for _ in range(2):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    for _ in range(a.steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    tokens = a.steps * b * a.seq
    patches = a.steps * b * vision.num_patches
    flops = 4 * n_llm * tokens + 2 * n_vision * patches
    flops_6n = 6 * n_llm * tokens + 2 * n_vision * patches
    out = {"shape": a.shape, "device": torch.cuda.get_device_name() if cuda else "cpu", "dtype": str(dtype),
           "zero_stage": ds_cfg["zero_optimization"]["stage"], "micro_batch": b, "seq": a.seq, "steps": a.steps,
           "params_llm": n_llm, "params_vision": n_vision, "params_trainable": n_train,
           "tokens_per_s": round(tokens / seconds, 1), "step_s": round(seconds / a.steps, 3),
           "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2 ** 30, 2) if cuda else None,
           "mfu": round(flops / seconds / (a.peak_tflops * 1e12), 4) if cuda else None,
           "mfu_6n_convention": round(flops_6n / seconds / (a.peak_tflops * 1e12), 4) if cuda else None}
    print(json.dumps(out, indent=1))
    if a.shape == "paper":
        Path(a.out).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
