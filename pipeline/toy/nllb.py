"""The toy profile's tiny NLLB: trained offline, cached, evaluated once, and its CLI.

`train_toy_nllb` trains a small `M2M100ForConditionalGeneration` (NLLB's architecture) from scratch on
the toy world's parallel corpus (`pipeline.toy.lexicon`) in both directions eng_Latn <-> X for the ten
target languages, with a SentencePiece BPE vocabulary and the real NLLB language codes, and saves it
exactly as an NLLB checkpoint is laid out on the hub (safetensors + tokenizer files), so the rest of the
pipeline (`pipeline.translation.nllb`: conversion, fingerprint, the production `Translator`) cannot tell
it from the real one. Its size and training knobs are the profile's `translation.toy_nllb`
(`pipeline.config.ToyNllbSettings`). `ensure_toy_model` trains once per settings and caches, and evaluates
once through a temporary int8 CTranslate2 conversion and the production `Translator`. The data side
(vocabulary, split, balancing) is in `pipeline.toy.nllb_data`.

CLI: ``python -m pipeline.toy.nllb --out DIR [--quick]`` trains into DIR/hf, converts to int8 under
DIR/ct2-int8, evaluates on the held-out rows and prints the chrF table.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from pipeline.config import ToyNllbSettings
from pipeline.languages import LANGS, SOURCE_LANG, TARGET_LANGS
from pipeline.toy import lexicon
from pipeline.toy.info import read_info, write_info
from pipeline.toy.nllb_data import (balance_templates, bare_word_rows, build_tokenizer, split_corpus,
                                    training_pairs)
from pipeline.translation.nllb import (convert_to_ctranslate2, evaluate_chrf, lang_id, local_path,
                                       model_fingerprint, replace_dir, sweep_stale_tmp, tmp_dir, tmp_prefixes,
                                       tmp_sibling)

__all__ = ["QUICK", "TOY_INFO_FILE", "toy_model_key", "train_toy_nllb", "heldout_rows", "ensure_toy_model",
           "format_chrf_table", "main"]

TOY_RECIPE_VERSION = 3  # bump when the training code changes what the settings train (invalidates caches)
TOY_EVAL_VERSION = 2  # bump when the evaluation changes (re-evaluates a cached model; 2: production Translator)
TOY_INFO_FILE = "toy_nllb.json"  # written next to the toy HF model: settings, stats, held-out rows, chrF
EVAL_PREFIX = ".eval-ct2-"  # ensure_toy_model's temporary CTranslate2 conversion, in the model root

#: a smaller, shorter run for smoke tests of the whole chain (quality well below the bar)
QUICK = ToyNllbSettings(d_model=64, ffn_dim=256, steps=300, warmup_steps=50)


def toy_model_key(settings: ToyNllbSettings) -> str:
    """Identifies a trained toy model: sha256 of the recipe version and the settings; hex[:16]."""
    blob = json.dumps({"recipe": TOY_RECIPE_VERSION, **settings.model_dump()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


def _encode_pairs(tok, pairs: Sequence[tuple[str, str, str, str]]) -> list[tuple[list[int], list[int]]]:
    """NLLB format: source [src_code, pieces..., </s>], labels [tgt_code, pieces..., </s>]."""
    texts = sorted({p[1] for p in pairs} | {p[3] for p in pairs})
    tok.src_lang = SOURCE_LANG
    ids = tok(texts, add_special_tokens=False)["input_ids"]
    piece_ids = dict(zip(texts, ids))
    eos = tok.eos_token_id
    return [([lang_id(tok, s)] + piece_ids[st] + [eos], [lang_id(tok, t)] + piece_ids[tt] + [eos])
            for s, st, t, tt in pairs]


def _batches(examples: list[tuple[list[int], list[int]]], batch_size: int, rng: random.Random
             ) -> list[list[int]]:
    """One epoch of uniformly shuffled batches.

    Deliberately not bucketed by length although that would save ~40% padding: length buckets are
    nearly monolingual (each language has its own sentence lengths), and with batches of one or a few
    languages at a time the multilingual model learns the target templates but ignores the source for
    hundreds of steps. Measured: exact-length buckets never got past chrF ~45 in 1500 steps, coarse
    buckets (width 4) reached chrF 63-80 where random batches reach 95-100 in 1000 steps."""
    order = list(range(len(examples)))
    rng.shuffle(order)
    return [order[k:k + batch_size] for k in range(0, len(order), batch_size)]


def _collate(examples, idx: list[int], pad: int, eos: int):
    import torch

    src = [examples[i][0] for i in idx]
    lab = [examples[i][1] for i in idx]
    s_len, t_len = max(map(len, src)), max(map(len, lab))
    input_ids = torch.full((len(idx), s_len), pad, dtype=torch.long)
    attention = torch.zeros((len(idx), s_len), dtype=torch.long)
    dec_in = torch.full((len(idx), t_len), pad, dtype=torch.long)
    labels = torch.full((len(idx), t_len), -100, dtype=torch.long)
    for k, (s, t) in enumerate(zip(src, lab)):
        input_ids[k, :len(s)] = torch.tensor(s)
        attention[k, :len(s)] = 1
        dec_in[k, :len(t)] = torch.tensor([eos] + t[:-1])  # decoder_start_token_id = </s>
        labels[k, 1:len(t)] = torch.tensor(t[1:])  # the language code is always forced: no loss on it
    return input_ids, attention, dec_in, labels


def _model_config(cfg: ToyNllbSettings, tok):
    from transformers import M2M100Config

    vocab = len(tok)
    vocab = (vocab + 7) // 8 * 8  # CTranslate2 pads the vocabulary with "madeupword" tokens, as NLLB has
    return M2M100Config(
        vocab_size=vocab, max_position_embeddings=cfg.max_positions, d_model=cfg.d_model,
        encoder_layers=cfg.encoder_layers, decoder_layers=cfg.decoder_layers,
        encoder_attention_heads=cfg.attention_heads, decoder_attention_heads=cfg.attention_heads,
        encoder_ffn_dim=cfg.ffn_dim, decoder_ffn_dim=cfg.ffn_dim, encoder_layerdrop=0.0, decoder_layerdrop=0.0,
        activation_function="relu", dropout=cfg.dropout, attention_dropout=cfg.attention_dropout,
        activation_dropout=0.0, scale_embedding=True, init_std=0.02, tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        decoder_start_token_id=tok.eos_token_id, architectures=["M2M100ForConditionalGeneration"],
        tokenizer_class="NllbTokenizer",
    )


def train_toy_nllb(corpus: Sequence[dict[str, str]] | None, out_dir: str | os.PathLike,
                   cfg: ToyNllbSettings | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train the toy NLLB from scratch and save it as an HF NLLB folder in `out_dir`.

    `corpus`: parallel rows (dict FLORES code -> sentence, "eng_Latn" required); None = the toy world's
    `lexicon.parallel_corpus()`. `cfg.heldout_fraction` of the rows (see `split_corpus`) are held out
    in every language; the model learns eng_Latn -> X and X -> eng_Latn for every other language of the
    rows (plus the bare attribute words when `cfg.bare_words`). The folder gets model.safetensors,
    config.json, generation_config.json, the tokenizer files and `toy_nllb.json` (settings, stats,
    held-out English sentences). Written atomically (temporary sibling, then renamed).

    Returns stats: steps, seconds, cpu_seconds, first_loss / first_nll (mean of the first logging window
    of `cfg.log_every` steps), final_loss / final_nll (mean of the last window; loss is the label-smoothed
    objective), n_train_pairs, n_heldout, n_params, vocab_size.
    """
    import torch
    import torch.nn.functional as F
    from transformers import GenerationConfig, M2M100ForConditionalGeneration

    cfg = cfg or ToyNllbSettings()
    if corpus is None:
        corpus = lexicon.parallel_corpus()
    rows = [r for r in corpus if r.get(SOURCE_LANG, "").strip()]
    if not rows:
        raise ValueError("train_toy_nllb: the corpus has no rows with an English (eng_Latn) sentence")
    langs = [l for l in LANGS if l != SOURCE_LANG and any(l in r for r in rows)]
    langs += sorted({l for r in rows for l in r} - set(LANGS))
    train_rows, heldout = split_corpus(rows, cfg.heldout_fraction, cfg.seed)
    # rare templates and the bare words (two sizes, a handful of colours) repeated up to min_template_rows
    extra, category_of = bare_word_rows() if cfg.bare_words else ([], {})
    pairs = training_pairs(balance_templates(train_rows, cfg.min_template_rows)
                           + balance_templates(extra, cfg.min_template_rows, category_of), langs)
    final = local_path(out_dir, "out_dir")
    tmp = tmp_sibling(final)
    threads_before = torch.get_num_threads()
    try:
        started, cpu_started = time.perf_counter(), time.process_time()
        torch.manual_seed(cfg.seed)
        torch.set_num_threads(cfg.threads)
        tok = build_tokenizer([s for r in train_rows + extra for s in r.values()], tmp, cfg.vocab_size,
                              cfg.max_piece_length)
        examples = _encode_pairs(tok, pairs)
        too_long = max(max(len(s), len(t)) for s, t in examples)
        if too_long + 1 > cfg.max_positions:
            raise ValueError(f"a training sentence has {too_long} tokens; raise max_positions ({cfg.max_positions})")
        model = M2M100ForConditionalGeneration(_model_config(cfg, tok))
        with torch.no_grad():  # fairseq's embedding init: scaled embeddings (x sqrt(d)) start at unit scale
            emb = model.get_input_embeddings().weight
            emb.normal_(0.0, cfg.d_model ** -0.5)
            emb[tok.pad_token_id].zero_()
        model.train()
        n_params = sum(p.numel() for p in model.parameters())
        log(f"toy NLLB: {n_params / 1e6:.2f}M parameters, vocab {model.config.vocab_size}, "
            f"{len(pairs)} training pairs ({len(train_rows)} rows + {len(extra)} bare words, "
            f"{len(langs)} languages, both directions), {len(heldout)} rows held out")
        decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed_positions" not in n]
        no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98),
                                eps=1e-8)

        def lr_at(step: int) -> float:  # linear warmup, cosine decay to min_lr_ratio
            if step < cfg.warmup_steps:
                return cfg.lr * (step + 1) / cfg.warmup_steps
            t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
            return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))

        rng = random.Random(cfg.seed)
        pad, eos = tok.pad_token_id, tok.eos_token_id
        queue: list[list[int]] = []
        window_loss = window_nll = 0.0
        window_n = 0
        windows: list[tuple[float, float]] = []  # (mean loss, mean nll) of each logging window
        for step in range(cfg.steps):
            if not queue:
                queue = _batches(examples, cfg.batch_size, rng)
            idx = queue.pop()
            input_ids, attention, dec_in, labels = _collate(examples, idx, pad, eos)
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            logits = model(input_ids=input_ids, attention_mask=attention, decoder_input_ids=dec_in).logits
            mask = labels != -100
            logp = F.log_softmax(logits[mask].float(), dim=-1)
            nll = -logp.gather(1, labels[mask].unsqueeze(1)).squeeze(1)
            loss = ((1 - cfg.label_smoothing) * nll - cfg.label_smoothing * logp.mean(-1)).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            window_loss += loss.item()
            window_nll += nll.mean().item()
            window_n += 1
            if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
                windows.append((window_loss / window_n, window_nll / window_n))
                log(f"step {step + 1}/{cfg.steps} loss {windows[-1][0]:.4f} nll {windows[-1][1]:.4f} "
                    f"lr {lr_at(step):.2e} {time.perf_counter() - started:.0f}s (cpu {time.process_time() - cpu_started:.0f}s)")
                window_loss = window_nll = 0.0
                window_n = 0
        model.eval()
        model.generation_config = GenerationConfig(
            bos_token_id=tok.bos_token_id, eos_token_id=eos, pad_token_id=pad, decoder_start_token_id=eos,
            num_beams=1, do_sample=False)
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        seconds = time.perf_counter() - started
        stats = {"steps": cfg.steps, "seconds": round(seconds, 1),
                 "cpu_seconds": round(time.process_time() - cpu_started, 1),
                 "first_loss": round(windows[0][0], 4), "first_nll": round(windows[0][1], 4),
                 "final_loss": round(windows[-1][0], 4), "final_nll": round(windows[-1][1], 4),
                 "n_train_pairs": len(pairs), "n_heldout": len(heldout), "n_params": n_params,
                 "vocab_size": model.config.vocab_size}
        info = {"config": cfg.model_dump(), "config_key": toy_model_key(cfg), "stats": stats, "languages": langs,
                "heldout_eng": [r[SOURCE_LANG] for r in heldout]}
        (tmp / TOY_INFO_FILE).write_text(json.dumps(info, ensure_ascii=False, indent=1), encoding="utf-8")
        replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        torch.set_num_threads(threads_before)
    log(f"toy NLLB saved to {final} in {stats['seconds']}s (loss {stats['first_loss']} -> {stats['final_loss']}, "
        f"nll {stats['final_nll']})")
    return stats


# ---------------------------------------------------------------------------
# Held-out rows, cache and evaluation
# ---------------------------------------------------------------------------


def heldout_rows(hf_dir: str | os.PathLike, corpus: Sequence[dict[str, str]] | None = None
                 ) -> list[dict[str, str]]:
    """The held-out parallel rows of a toy model (English sentences recorded in its toy_nllb.json)."""
    info = json.loads((local_path(hf_dir, "hf_dir") / TOY_INFO_FILE).read_text(encoding="utf-8"))
    if corpus is None:
        corpus = lexicon.parallel_corpus()
    held = set(info["heldout_eng"])
    return [r for r in corpus if r.get(SOURCE_LANG) in held]



def ensure_toy_model(root: str | os.PathLike, settings: ToyNllbSettings | None = None,
                     log: Callable[[str], None] = print, quantization: str = "int8"
                     ) -> tuple[Path, dict[str, Any], dict[str, dict[str, float]]]:
    """Train the toy NLLB into ROOT/hf unless a model of the same settings is there; evaluate it once.

    First removes what a killed run left in ROOT (`.eval-ct2-*`, `.hf.tmp-*`, `.hf.old-*` of processes that
    are gone). Evaluation goes through a temporary CTranslate2 conversion (`quantization`, greedy) and the
    production `Translator`, as the pipeline uses the model. Returns (hf_dir, training stats, chrF as in
    `evaluate_chrf`); stats and chrF are cached in hf/toy_nllb.json.
    """
    from pipeline.translation.translator import Translator

    settings = settings or ToyNllbSettings()
    key = toy_model_key(settings)
    base = local_path(root, "root")
    hf_dir = base / "hf"
    swept = sweep_stale_tmp(base, (EVAL_PREFIX, *tmp_prefixes(hf_dir)))
    if swept:
        log(f"toy NLLB: removed {len(swept)} temporary folder(s) left by a killed run in {base}: {swept}")
    info_file = hf_dir / TOY_INFO_FILE
    info = read_info(info_file)
    trained = bool(info) and info.get("config_key") == key and (hf_dir / "config.json").is_file()
    if trained and info.get("chrf") and info.get("eval_version") == TOY_EVAL_VERSION:
        log(f"toy NLLB: reusing {hf_dir} (settings {key})")
        return hf_dir, info["stats"], info["chrf"]
    if not trained:
        train_toy_nllb(None, hf_dir, settings, log)
        info = read_info(info_file)
    tmp = tmp_dir(base, EVAL_PREFIX)
    try:
        ct2 = convert_to_ctranslate2(hf_dir, tmp / "ct2", quantization)
        translator = Translator(str(ct2), compute_type=quantization or "default")
        started = time.perf_counter()
        chrf = evaluate_chrf(translator, heldout_rows(hf_dir), info.get("languages", TARGET_LANGS))
        del translator
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"toy NLLB chrF (held-out, {quantization or 'float32'}, greedy, {time.perf_counter() - started:.0f}s): "
        + ", ".join(f"{l} {v:.1f}" for l, v in chrf["eng_to_x"].items()))
    info.update(chrf=chrf, eval_version=TOY_EVAL_VERSION)
    write_info(info_file, info)
    return hf_dir, info["stats"], chrf


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------


def format_chrf_table(chrf: dict[str, dict[str, float]]) -> str:
    lines = [f"{'language':<10} {'eng->X':>8} {'X->eng':>8}"]
    for lang in chrf["eng_to_x"]:
        lines.append(f"{lang:<10} {chrf['eng_to_x'][lang]:>8.1f} {chrf['x_to_eng'].get(lang, float('nan')):>8.1f}")
    e, x = list(chrf["eng_to_x"].values()), list(chrf["x_to_eng"].values())
    lines.append(f"{'min':<10} {min(e):>8.1f} {min(x):>8.1f}")
    lines.append(f"{'mean':<10} {sum(e) / len(e):>8.1f} {sum(x) / len(x):>8.1f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from pipeline.translation.translator import Translator

    parser = argparse.ArgumentParser(prog="python -m pipeline.toy.nllb",
                                     description="Train the toy NLLB, convert it to CTranslate2 int8, evaluate chrF.")
    parser.add_argument("--out", required=True, help="output folder: OUT/hf (HF model), OUT/ct2-int8 (CTranslate2)")
    parser.add_argument("--quick", action="store_true", help="a small, short run (smoke test; below the quality bar)")
    parser.add_argument("--steps", type=int, help="override the number of training steps")
    parser.add_argument("--seed", type=int, help="override the seed")
    parser.add_argument("--quantization", default="int8")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else ToyNllbSettings()
    overrides = {k: v for k, v in (("steps", args.steps), ("seed", args.seed)) if v is not None}
    if overrides:  # validated like the profile's settings (model_copy alone would not check them)
        try:
            cfg = ToyNllbSettings(**{**cfg.model_dump(), **overrides})
        except ValueError as exc:  # pydantic's ValidationError
            parser.error(str(exc))
    out = Path(args.out)
    t0 = time.perf_counter()
    stats = train_toy_nllb(None, out / "hf", cfg)
    t1 = time.perf_counter()
    ct2 = convert_to_ctranslate2(out / "hf", out / f"ct2-{args.quantization}", args.quantization)
    t2 = time.perf_counter()
    chrf = evaluate_chrf(Translator(str(ct2), compute_type=args.quantization), heldout_rows(out / "hf"))
    t3 = time.perf_counter()
    print(format_chrf_table(chrf))
    print(json.dumps({"stats": stats, "fingerprint": model_fingerprint(ct2), "train_s": round(t1 - t0, 1),
                      "convert_s": round(t2 - t1, 1), "eval_s": round(t3 - t2, 1), "total_s": round(t3 - t0, 1)}))
    ok = min(chrf["eng_to_x"].values()) >= 80
    print(f"quality bar (chrF >= 80 eng->X in every language): {'PASSED' if ok else 'NOT MET'}")
    return 0 if ok or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
