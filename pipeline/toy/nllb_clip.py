"""The toy profile's tiny NLLB-CLIP: built by open_clip itself, trained offline, cached, evaluated once.

`train_toy_nllb_clip` builds a CustomTextCLIP through open_clip's factory (`local-dir:` config, REFERENCE 6):
a small ViT image tower and, as text tower, the toy NLLB's *encoder* (initialised from its weights) pooled
at the first token, the language tag. It trains on toy scenes (`pipeline.toy.scenes`, JPEG-encoded as the
downloader delivers them) with their captions in all eleven languages (`pipeline.toy.world.say`), with a
balanced sigmoid loss and no bias:

    logits = exp(logit_scale) * img @ txt.T
    loss   = mean softplus(-diagonal) + mean softplus(off-diagonal)

so matched pairs are pushed above cosine 0 and mismatched ones below it: the threshold 0 of the paper is
then the decision boundary (a CLIP softmax loss, or SigLIP's learnable bias, leaves mismatched pairs
around 0). Batches hold distinct attribute combinations, so every off-diagonal pair is a true negative.

A share of the attribute combinations (`heldout_fraction`) is never trained on; `evaluate` scores fresh
renderings of them through the production scorer (`pipeline.wit.clip.NllbClip`) in every language:
matched captions against mismatched ones that describe another image (a different colour and shape, as
the toy WIT's mismatches do), reporting ROC AUC and the share of matched pairs >= 0 and of mismatched
pairs < 0. Near misses (one attribute different) are reported too, for information.

`ensure_toy_nllb_clip(root, nllb_hf_dir, settings)` trains once per (settings, toy NLLB) and caches.
CLI: ``python -m pipeline.toy.nllb_clip --nllb LAKE/models/nllb/hf --out DIR [--steps N]``.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from pipeline.config import ToyNllbClipSettings
from pipeline.languages import LANGS
from pipeline.toy import lexicon as lx
from pipeline.toy.info import read_info, write_info
from pipeline.toy.scenes import Scene, jpeg_bytes
from pipeline.toy.world import say
from pipeline.translation.nllb import local_path, sweep_stale_tmp, tmp_prefixes
from pipeline.wit.clip import NllbClip, save_local_dir

__all__ = ["TOY_INFO_FILE", "toy_clip_key", "combinations", "split_combinations", "train_toy_nllb_clip",
           "evaluate", "ensure_toy_nllb_clip", "roc_auc", "main"]

TOY_RECIPE_VERSION = 1  # bump when the training code changes what the settings train (invalidates caches)
TOY_EVAL_VERSION = 1  # bump when the evaluation changes (re-evaluates a cached model)
TOY_INFO_FILE = "toy_nllb_clip.json"
# renderings of training and evaluation scenes use their own seed ranges, apart from the toy world's
_TRAIN_DRAW_SEED = 50_000
_EVAL_DRAW_SEED = 90_000
_MISMATCHES_PER_IMAGE = 4
_NEAR_MISSES_PER_IMAGE = 2
_NORMALIZE_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP's, as nllb-clip-base uses
_NORMALIZE_STD = (0.26862954, 0.26130258, 0.27577711)

Log = Callable[[str], None]


def toy_clip_key(settings: ToyNllbClipSettings, nllb_fingerprint: str) -> str:
    """Identifies a trained toy NLLB-CLIP: recipe version, settings and the toy NLLB it started from."""
    blob = json.dumps({"recipe": TOY_RECIPE_VERSION, "nllb": nllb_fingerprint, **settings.model_dump()},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _nllb_fingerprint(hf_dir: Path) -> str:
    h = hashlib.sha256()
    for name in ("model.safetensors", "config.json", "sentencepiece.bpe.model"):
        p = hf_dir / name
        if p.is_file():
            h.update(name.encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


def combinations() -> list[Scene]:
    """Every attribute combination of the toy world (6 colours x 4 shapes x 2 sizes x 5 positions)."""
    out = []
    for colour in lx.COLOURS:
        for shape in lx.SHAPES:
            for size in lx.SIZES:
                for position in lx.POSITIONS:
                    out.append(Scene(len(out), colour, shape, size, position))
    return out


def split_combinations(fraction: float, seed: int) -> tuple[list[Scene], list[Scene]]:
    """(train, held out): a seeded hash picks round(fraction * 240) combinations that are never trained on."""
    combos = combinations()
    rank = lambda s: hashlib.sha256(f"{seed}\0{s.colour}\0{s.shape}\0{s.size}\0{s.position}".encode()).hexdigest()  # noqa: E731
    held = set(id(s) for s in sorted(combos, key=rank)[:round(fraction * len(combos))])
    return [s for s in combos if id(s) not in held], [s for s in combos if id(s) in held]


def _pixels(scenes: Sequence[Scene], seeds: Sequence[int], preprocess):
    """Preprocessed tensors of JPEG renderings (the downloader delivers JPEGs: train on what is scored)."""
    import torch
    from PIL import Image

    return torch.stack([preprocess(Image.open(io.BytesIO(jpeg_bytes(s, seed))).convert("RGB"))
                        for s, seed in zip(scenes, seeds)])


def _caption_ids(model: NllbClip, scenes: Sequence[Scene], langs: Sequence[str]):
    """Token ids of every scene's caption in every language: tensor (len(langs), len(scenes), context)."""
    import torch

    return torch.stack([model.tokenize([say("caption", lang, s) for s in scenes], lang) for lang in langs])


# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------


def _model_cfg(cfg: ToyNllbClipSettings, text_dir: Path) -> dict[str, Any]:
    return {
        "embed_dim": cfg.embed_dim,
        "vision_cfg": {"image_size": cfg.image_size, "layers": cfg.vision_layers, "width": cfg.vision_width,
                       "head_width": cfg.vision_head_width, "patch_size": cfg.patch_size,
                       "mlp_ratio": cfg.mlp_ratio},
        "text_cfg": {"hf_model_name": str(text_dir), "hf_tokenizer_name": str(text_dir),
                     "hf_pooler_type": "cls_pooler", "hf_proj_type": "linear",
                     "context_length": cfg.context_length},
        "init_logit_scale": math.log(cfg.init_logit_scale),
    }


_PREPROCESS_CFG = {"size": None, "mean": _NORMALIZE_MEAN, "std": _NORMALIZE_STD, "interpolation": "bicubic",
                   "resize_mode": "shortest"}


def _build(cfg: ToyNllbClipSettings, nllb_hf: Path, build_dir: Path):
    """A fresh CustomTextCLIP through open_clip's factory; the text tower is the toy NLLB's encoder,
    with its weights when `cfg.init_from_nllb`."""
    import open_clip

    for name in os.listdir(nllb_hf):  # the tokenizer files must sit in the local-dir folder
        if name.startswith(("tokenizer", "sentencepiece", "special_tokens")):
            shutil.copy(nllb_hf / name, build_dir / name)
    model_cfg = _model_cfg(cfg, nllb_hf)
    preprocess_cfg = {**_PREPROCESS_CFG, "size": cfg.image_size}
    (build_dir / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg}), encoding="utf-8")
    model, _, preprocess = open_clip.create_model_and_transforms(
        f"local-dir:{build_dir}", pretrained_text=cfg.init_from_nllb, output_dict=True)
    tokenizer = open_clip.get_tokenizer(f"local-dir:{build_dir}")
    return model, preprocess, tokenizer, model_cfg, preprocess_cfg


def _balanced_sigmoid_loss(img, txt, logit_scale):
    import torch.nn.functional as F
    import torch

    logits = logit_scale.exp() * img @ txt.T
    eye = torch.eye(len(img), dtype=torch.bool)
    return F.softplus(-logits[eye]).mean() + F.softplus(logits[~eye]).mean()


def train_toy_nllb_clip(nllb_hf_dir: str | os.PathLike, out_dir: str | os.PathLike,
                        cfg: ToyNllbClipSettings | None = None, log: Log = print,
                        info_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train the toy NLLB-CLIP and save it as a `local-dir:` folder in `out_dir` (see pipeline.wit.clip).

    Returns stats: steps, seconds, cpu_seconds, first_loss / final_loss (means of the first and last
    logging windows), n_params, n_train_combinations, n_heldout_combinations."""
    import torch
    import torch.nn.functional as F

    cfg = cfg or ToyNllbClipSettings()
    nllb_hf = local_path(nllb_hf_dir, "toy NLLB folder")
    if not (nllb_hf / "config.json").is_file():
        raise FileNotFoundError(f"no toy NLLB in {nllb_hf}; materialise the nllb_model asset first")
    train, heldout = split_combinations(cfg.heldout_fraction, cfg.seed)
    if len(train) < cfg.batch_size:
        raise ValueError(f"batch_size {cfg.batch_size} is larger than the {len(train)} training combinations")
    threads_before = torch.get_num_threads()
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        rng = random.Random(cfg.seed)
        with tempfile.TemporaryDirectory(prefix="toy-nllb-clip-") as build:
            model, preprocess, tokenizer, model_cfg, preprocess_cfg = _build(cfg, nllb_hf, Path(build))
            scorer = NllbClip(model, preprocess, tokenizer, "training")
            n_params = sum(p.numel() for p in model.parameters())
            # every training image, rendered once per draw: (draws, combos, 3, H, W)
            pixels = torch.stack([_pixels(train, [_TRAIN_DRAW_SEED + 1000 * cfg.seed + 97 * d + s.scene_id
                                                  for s in train], preprocess)
                                  for d in range(cfg.draws_per_scene)])
            langs = list(LANGS)
            captions = _caption_ids(scorer, train, langs)  # (langs, combos, context)
            log(f"toy NLLB-CLIP: {n_params / 1e6:.2f}M parameters, {len(train)} training combinations x "
                f"{cfg.draws_per_scene} renderings, captions in {len(langs)} languages, {len(heldout)} "
                f"combinations held out ({time.perf_counter() - started:.0f}s to prepare)")
            decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed" not in n]
            no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embed" not in n)]
            opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                     {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98))

            def lr_at(step: int) -> float:
                if step < cfg.warmup_steps:
                    return cfg.lr * (step + 1) / cfg.warmup_steps
                t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
                return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))

            model.train()
            windows: list[float] = []
            window, window_n = 0.0, 0
            for step in range(cfg.steps):
                idx = rng.sample(range(len(train)), cfg.batch_size)  # distinct combinations
                draw = torch.tensor([rng.randrange(cfg.draws_per_scene) for _ in idx])
                lang = torch.tensor([rng.randrange(len(langs)) for _ in idx])
                index = torch.tensor(idx)
                img = F.normalize(model.encode_image(pixels[draw, index]), dim=-1)
                txt = F.normalize(model.encode_text(captions[lang, index]), dim=-1)
                for group in opt.param_groups:
                    group["lr"] = lr_at(step)
                loss = _balanced_sigmoid_loss(img, txt, model.logit_scale)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                with torch.no_grad():
                    model.logit_scale.clamp_(0, math.log(100))
                window += loss.item()
                window_n += 1
                if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
                    windows.append(window / window_n)
                    log(f"step {step + 1}/{cfg.steps} loss {windows[-1]:.4f} lr {lr_at(step):.2e} "
                        f"scale {model.logit_scale.exp().item():.1f} {time.perf_counter() - started:.0f}s "
                        f"(cpu {time.process_time() - cpu_started:.0f}s)")
                    window, window_n = 0.0, 0
            model.eval()
            stats = {"steps": cfg.steps, "seconds": round(time.perf_counter() - started, 1),
                     "cpu_seconds": round(time.process_time() - cpu_started, 1),
                     "first_loss": round(windows[0], 4), "final_loss": round(windows[-1], 4),
                     "logit_scale": round(model.logit_scale.exp().item(), 2), "n_params": n_params,
                     "n_train_combinations": len(train), "n_heldout_combinations": len(heldout)}
            info = {"config": cfg.model_dump(), "stats": stats, "languages": langs,
                    "heldout": [s.slots() for s in heldout], **(info_extra or {})}
            final = save_local_dir(model, tokenizer.tokenizer, model_cfg, preprocess_cfg, out_dir,
                                   {TOY_INFO_FILE: json.dumps(info, ensure_ascii=False, indent=1)})
    finally:
        torch.set_num_threads(threads_before)
    log(f"toy NLLB-CLIP saved to {final} in {stats['seconds']}s (loss {stats['first_loss']} -> "
        f"{stats['final_loss']})")
    return stats


# ---------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------


def roc_auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    if not positives or not negatives:
        return float("nan")
    ranked = sorted([(v, 1) for v in positives] + [(v, 0) for v in negatives])
    rank_sum, i = 0.0, 0
    while i < len(ranked):  # average ranks over ties
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        avg = (i + j + 1) / 2
        rank_sum += avg * sum(1 for k in range(i, j) if ranked[k][1])
        i = j
    n_pos, n_neg = len(positives), len(negatives)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def evaluate(model: NllbClip, heldout: Sequence[Scene], draws: int = 2, threshold: float = 0.0,
             seed: int = 0) -> dict[str, dict[str, float]]:
    """Per language, on fresh renderings of the held-out combinations: ROC AUC of matched vs mismatched
    captions, the share of matched pairs scoring >= threshold and of mismatched pairs < threshold
    (mismatched: another combination's caption, different in colour and shape, as the toy WIT makes them),
    and the same share for near misses (one attribute different; information, not a bar)."""
    import torch

    rng = random.Random(seed)
    combos = combinations()
    images = [(s, _EVAL_DRAW_SEED + 1000 * seed + 131 * d + s.scene_id) for d in range(draws) for s in heldout]
    pixels = _pixels([s for s, _ in images], [sd for _, sd in images], model.preprocess)
    img = model.encode_images(pixels)
    far = {s.scene_id: [o for o in combos if o.colour != s.colour and o.shape != s.shape] for s in heldout}
    near = {s.scene_id: [o for o in combos if sum(a != b for a, b in zip(o.slots().values(), s.slots().values())) == 1]
            for s in heldout}
    pairs = [(k, s, "far", o) for k, (s, _) in enumerate(images) for o in rng.sample(far[s.scene_id], _MISMATCHES_PER_IMAGE)]
    pairs += [(k, s, "near", o) for k, (s, _) in enumerate(images) for o in rng.sample(near[s.scene_id], _NEAR_MISSES_PER_IMAGE)]
    pairs += [(k, s, "match", s) for k, (s, _) in enumerate(images)]
    out: dict[str, dict[str, float]] = {}
    for lang in LANGS:
        txt = model.encode_texts([say("caption", lang, o) for _, _, _, o in pairs], lang)
        sims = (img[torch.tensor([k for k, *_ in pairs])] * txt).sum(-1).tolist()
        by = {"match": [], "far": [], "near": []}
        for (_, _, kind, _), v in zip(pairs, sims):
            by[kind].append(v)
        out[lang] = {
            "auc": round(roc_auc(by["match"], by["far"]), 4),
            "matched_kept": round(sum(v >= threshold for v in by["match"]) / len(by["match"]), 4),
            "mismatched_dropped": round(sum(v < threshold for v in by["far"]) / len(by["far"]), 4),
            "near_miss_dropped": round(sum(v < threshold for v in by["near"]) / len(by["near"]), 4),
            "auc_near_miss": round(roc_auc(by["match"], by["near"]), 4),
            "mean_matched": round(sum(by["match"]) / len(by["match"]), 4),
            "mean_mismatched": round(sum(by["far"]) / len(by["far"]), 4),
            "pairs": len(sims),
        }
    return out


def quality_summary(quality: dict[str, dict[str, float]]) -> dict[str, float]:
    """The worst language on each measure (what the asset check holds against the bar)."""
    return {f"min_{k}": min(q[k] for q in quality.values())
            for k in ("auc", "matched_kept", "mismatched_dropped", "near_miss_dropped")}


# ---------------------------------------------------------------------------
# Cache
# ---------------------------------------------------------------------------



def ensure_toy_nllb_clip(out_dir: str | os.PathLike, nllb_hf_dir: str | os.PathLike,
                         settings: ToyNllbClipSettings | None = None, log: Log = print
                         ) -> tuple[Path, dict[str, Any], dict[str, dict[str, float]]]:
    """Train the toy NLLB-CLIP into OUT_DIR (a `local-dir:` folder) unless a model of the same settings
    and toy NLLB is there; evaluate it once through the production scorer. Returns (model folder,
    training stats, held-out quality per language); stats and quality are cached in its toy_nllb_clip.json."""
    settings = settings or ToyNllbClipSettings()
    folder = local_path(out_dir, "out_dir")
    swept = sweep_stale_tmp(folder.parent, tmp_prefixes(folder))
    if swept:
        log(f"toy NLLB-CLIP: removed {len(swept)} temporary folder(s) left by a killed run: {swept}")
    key = toy_clip_key(settings, _nllb_fingerprint(local_path(nllb_hf_dir, "toy NLLB folder")))
    info_file = folder / TOY_INFO_FILE
    info = read_info(info_file)
    trained = bool(info) and info.get("config_key") == key and (folder / "open_clip_config.json").is_file()
    if trained and info.get("quality") and info.get("eval_version") == TOY_EVAL_VERSION:
        log(f"toy NLLB-CLIP: reusing {folder} (settings {key})")
        return folder, info["stats"], info["quality"]
    if not trained:
        train_toy_nllb_clip(nllb_hf_dir, folder, settings, log, info_extra={"config_key": key})
        info = read_info(info_file)
    import torch

    threads_before = torch.get_num_threads()
    try:
        torch.set_num_threads(settings.threads)
        started = time.perf_counter()
        heldout = [Scene(i, **slots) for i, slots in enumerate(info["heldout"])]
        quality = evaluate(NllbClip.load(folder), heldout, settings.eval_draws, seed=settings.seed)
    finally:
        torch.set_num_threads(threads_before)
    log(f"toy NLLB-CLIP held-out quality ({time.perf_counter() - started:.0f}s): "
        + ", ".join(f"{lang} AUC {q['auc']:.3f}" for lang, q in quality.items()))
    info.update(quality=quality, eval_version=TOY_EVAL_VERSION)
    write_info(info_file, info)
    return folder, info["stats"], quality


def format_quality_table(quality: dict[str, dict[str, float]]) -> str:
    cols = ("auc", "matched_kept", "mismatched_dropped", "near_miss_dropped")
    lines = [f"{'language':<10} " + " ".join(f"{c:>18}" for c in cols)]
    lines += [f"{lang:<10} " + " ".join(f"{q[c]:>18.3f}" for c in cols) for lang, q in quality.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.toy.nllb_clip",
                                     description="Train the toy NLLB-CLIP and print its held-out quality.")
    parser.add_argument("--nllb", required=True, help="the toy NLLB's HF folder (LAKE/models/nllb/hf)")
    parser.add_argument("--out", required=True, help="the model folder (open_clip local-dir)")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--seed", type=int)
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in (("steps", args.steps), ("seed", args.seed)) if v is not None}
    try:
        cfg = ToyNllbClipSettings(**overrides)
    except ValueError as exc:
        parser.error(str(exc))
    folder, stats, quality = ensure_toy_nllb_clip(args.out, args.nllb, cfg)
    print(format_quality_table(quality))
    print(json.dumps({"folder": str(folder), "stats": stats, **quality_summary(quality)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
