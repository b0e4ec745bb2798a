"""Tiny in-memory datasets in the shard row schema and tiny toy models, shared by the model and training tests."""
from __future__ import annotations

import random
from pathlib import Path

from pipeline.config import EvaArch, LoraSettings, ModelSettings, StageSettings, ToyEvaSettings, ToyLlamaSettings, VisionSettings
from pipeline.toy.eva import ensure_toy_eva
from pipeline.toy.llama import ensure_toy_llama
from pipeline.toy.scenes import jpeg_bytes, make_scenes
from pipeline.toy.world import conversation, say

VISION = VisionSettings(model="EVA-test", pretrained=None, arch=EvaArch(embed_dim=32, depth=2, num_heads=2,
                        embed_dim_out=32, text_width=32, text_layers=1), image_size=64, drop_last_blocks=1)
LLAMA = ToyLlamaSettings(vocab_size=500, hidden_size=32, intermediate_size=64, num_heads=2, num_kv_heads=1,
                         steps=40, batch_size=16, instruct_conversations=200, instruct_batch=4)
EVA = ToyEvaSettings(scenes=32, steps=5, batch_size=8)


def toy_models(root: Path) -> tuple[str, str]:
    llama = ensure_toy_llama(root / "llama", LLAMA, log=lambda *_: None)
    eva = ensure_toy_eva(root / "eva", VISION, EVA, log=lambda *_: None)
    return str(llama), str(eva)


def model_settings(root: Path, stages: dict | None = None, **over) -> ModelSettings:
    llama, eva = toy_models(root)
    vision = VISION.model_copy(update={"pretrained": eva})
    return ModelSettings(vision=vision, llm=llama, lora=LoraSettings(r=4, alpha=8, dropout=0.1),
                         threads=1, stages=stages or {}, **over)


def stage(mixture: dict, steps: int, **over) -> StageSettings:
    kw = dict(mixture=mixture, steps=steps, batch_size=4, accumulation=2, lr=3e-3, min_lr=3e-4, warmup_steps=2,
              save_every=2, log_every=1, max_text_tokens=256, seed=7)
    kw.update(over)
    return StageSettings(**kw)


def datasets(n: int = 24, seed: int = 0) -> dict[str, list[dict]]:
    """Three tiny datasets: English conversations with images, multilingual ones, captions."""
    rng = random.Random(seed)
    scenes = make_scenes(seed + 5, n)
    llava = [{"id": f"l{i}", "dataset": "llava", "source": "toy", "lang": "eng_Latn",
              "conversations": conversation(s, "eng_Latn", rng), "image": jpeg_bytes(s), "caption": None}
             for i, s in enumerate(scenes)]
    langs = ("fra_Latn", "zho_Hans", "hin_Deva")
    palo = [{"id": f"p{i}", "dataset": "palo", "source": "toy", "lang": langs[i % 3],
             "conversations": conversation(s, langs[i % 3], rng), "image": jpeg_bytes(s), "caption": None}
            for i, s in enumerate(scenes)]
    caps = [{"id": f"c{i}", "dataset": "captions", "source": "toy", "lang": "eng_Latn", "conversations": None,
             "image": jpeg_bytes(s), "caption": say("caption", "eng_Latn", s)} for i, s in enumerate(scenes)]
    return {"llava": llava, "palo": palo, "captions": caps}
