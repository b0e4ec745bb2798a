"""NLLB on CTranslate2: the conversion shared by both profiles, and the toy profile's tiny NLLB.

Both profiles
-------------
- `convert_to_ctranslate2(hf_dir, out_dir, quantization)`: a Hugging Face NLLB folder -> a CTranslate2
  model folder (model.bin, config.json, shared_vocabulary.json and the tokenizer files). Written into a
  temporary sibling folder and renamed into place, so a killed conversion never leaves half a model.
- `model_fingerprint(ct2_dir)`: sha256 of the converted files; the translation memory's model key.
- `load_translator(ct2_dir, ...)` -> `(ctranslate2.Translator, tokenizer)`.
- `translate_batch(...)`: the simplest correct translation call (the reference implementation; the
  production engine, batched by tokens and guarded against NLLB's failure modes, is
  `pipeline.translation.translator.Translator`).
- `evaluate_chrf(...)`: corpus chrF (sacrebleu) of held-out parallel rows, both directions.

Toy profile
-----------
Offline, no model hub: `train_toy_nllb` trains a small `M2M100ForConditionalGeneration` (NLLB's
architecture) from scratch on the toy world's parallel corpus (`pipeline.toy.lexicon`) in both directions
eng_Latn <-> X for the ten target languages, with a SentencePiece BPE vocabulary and the real NLLB language
codes, and saves it exactly as an NLLB checkpoint is laid out on the hub (safetensors + tokenizer files),
so the rest of the pipeline cannot tell it from the real one. `ensure_toy_model` trains once and caches.

CLI: ``python -m pipeline.translation.nllb --out DIR [--quick]`` trains into DIR/hf, converts to int8
under DIR/ct2-int8, evaluates on the held-out rows and prints the chrF table.

chrF results are ``{"eng_to_x": {lang: chrF}, "x_to_eng": {lang: chrF}}`` (keys are FLORES codes of the
non-English side).
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import math
import os
import random
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from pipeline.languages import LANGS, SOURCE_LANG, TARGET_LANGS

__all__ = [
    "ToyNllbConfig",
    "QUICK_CONFIG",
    "FAIRSEQ_LANGUAGE_CODES",
    "build_tokenizer",
    "load_tokenizer",
    "split_corpus",
    "training_pairs",
    "train_toy_nllb",
    "convert_to_ctranslate2",
    "model_fingerprint",
    "load_translator",
    "translate_batch",
    "evaluate_chrf",
    "ensure_toy_model",
    "main",
]

SPM_FILE = "sentencepiece.bpe.model"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", SPM_FILE, "special_tokens_map.json")
TOY_RECIPE_VERSION = 3  # bump when the training code changes what a config trains (invalidates caches)
TOY_INFO_FILE = "toy_nllb.json"  # written next to the toy HF model: config, stats, held-out rows, chrF
# files of a converted model that identify it (the fingerprint): weights, config, vocabulary, tokenizer
_FINGERPRINT_FILES = ("model.bin", "config.json", "shared_vocabulary.json", "shared_vocabulary.txt",
                      "source_vocabulary.json", "source_vocabulary.txt", "target_vocabulary.json",
                      "target_vocabulary.txt", "vocabulary.json", "vocabulary.txt") + TOKENIZER_FILES


@functools.lru_cache(maxsize=1)
def _language_codes() -> tuple[str, ...]:
    """NLLB's 202 FLORES-200 language codes, in NLLB's order (from transformers)."""
    from transformers.models.nllb.tokenization_nllb import FAIRSEQ_LANGUAGE_CODES as codes

    return tuple(codes)


def __getattr__(name: str) -> Any:
    # FAIRSEQ_LANGUAGE_CODES is read lazily: importing this module must not import transformers
    if name == "FAIRSEQ_LANGUAGE_CODES":
        return list(_language_codes())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ToyNllbConfig:
    """Size and training knobs of the toy NLLB. The defaults reach chrF >= 80 on held-out toy
    sentences in every target language in a few minutes on 2 CPU cores."""

    # tokenizer
    vocab_size: int = 1600  # SentencePiece BPE pieces (the HF vocabulary adds 202 language codes + <mask>)
    max_piece_length: int = 16  # (Han and kana pieces are single characters, see _split_cjk)
    # model (M2M100 = NLLB architecture: pre-norm, scaled embeddings, sinusoidal positions, tied output)
    d_model: int = 96
    encoder_layers: int = 2
    decoder_layers: int = 2
    attention_heads: int = 4
    ffn_dim: int = 384
    dropout: float = 0.0  # the held-out sentences are new combinations of seen words: no dropout needed
    attention_dropout: float = 0.0
    max_positions: int = 128
    # training
    seed: int = 0
    steps: int = 1000
    batch_size: int = 64  # sentence pairs, uniformly mixed over languages and directions
    lr: float = 3e-3
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05  # cosine decay to lr * min_lr_ratio
    weight_decay: float = 0.01
    label_smoothing: float = 0.1
    grad_clip: float = 1.0
    heldout_fraction: float = 0.08
    bare_words: bool = True  # also train on the bare attribute words (multiple-choice options)
    # rows of a sentence template with fewer rows are repeated up to this many: without it a one-row
    # template ("Describe the picture.") is seen 240x less often than the captions and comes out garbled
    min_template_rows: int = 24
    # torch intra-op threads. 1, not 2: this model's matmuls are tiny, and on a busy 2-core machine two
    # OpenMP threads spin against the other processes (measured 5x slower per step than one thread)
    threads: int = 1
    log_every: int = 100

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def key(self) -> str:
        """Identifies a trained toy model: the knobs plus the version of the training recipe."""
        blob = json.dumps({"recipe": TOY_RECIPE_VERSION, **self.to_dict()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


#: a smaller, shorter run for smoke tests of the whole chain (quality well below the bar)
QUICK_CONFIG = ToyNllbConfig(d_model=64, ffn_dim=256, steps=300, warmup_steps=50)


# ---------------------------------------------------------------------------
# Paths
# ---------------------------------------------------------------------------


def _local(path: Any, what: str) -> Path:
    """A local filesystem path from a str, Path or local UPath; ValueError for remote ones."""
    protocol = getattr(path, "protocol", "")
    if protocol not in ("", "file", "local", None):
        raise ValueError(f"{what} must be on the local filesystem (CTranslate2 and transformers read local "
                         f"folders); got {path!s} with protocol {protocol!r}")
    try:
        return Path(os.fspath(path))
    except TypeError as exc:
        raise ValueError(f"{what}: cannot use {path!r} as a local path") from exc


def _replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished folder into place; an old `final` is swapped out, then deleted."""
    os.chmod(tmp, 0o755)  # mkdtemp makes it private
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}-{time.monotonic_ns()}")
        final.rename(old)
    tmp.rename(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _tmp_sibling(final: Path) -> Path:
    final.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))


# ---------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------


def build_tokenizer(sentences: Iterable[str], out_dir: str | os.PathLike, vocab_size: int = 1600,
                    max_piece_length: int = 16):
    """Train a SentencePiece BPE model on `sentences` (all languages) and build an NLLB tokenizer on it.

    Han and kana pieces are single characters (see `_split_cjk`); other scripts get whole-word pieces.
    Writes `sentencepiece.bpe.model`, `tokenizer.json` and `tokenizer_config.json` into `out_dir` and
    returns the `NllbTokenizer`. The vocabulary follows NLLB's layout: <s>=0 <pad>=1 </s>=2 <unk>=3,
    the SentencePiece pieces, <mask>, then the 202 FLORES-200 language codes as special tokens.

    transformers 5: `NllbTokenizer(vocab_file=...)` silently ignores the SentencePiece file (every word
    becomes <unk>); `from_pretrained(folder, extra_special_tokens=codes)` converts it properly.
    """
    import sentencepiece as spm
    from transformers import NllbTokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = sorted({s.strip() for s in sentences if s and s.strip()})
    if not text:
        raise ValueError("build_tokenizer: no sentences to train the SentencePiece model on")
    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "spm")
        spm.SentencePieceTrainer.train(  # BPE training is deterministic (single thread)
            sentence_iterator=iter([_split_cjk(s) for s in text]), model_prefix=prefix, vocab_size=vocab_size,
            model_type="bpe", character_coverage=1.0, max_sentencepiece_length=max_piece_length,
            hard_vocab_limit=False, pretokenization_delimiter=_PIECE_BREAK,
            num_threads=1, minloglevel=2, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        )
        # a folder holding only the SentencePiece model: from_pretrained would prefer a tokenizer.json
        spm_dir = os.path.join(tmp, "tokenizer")
        os.mkdir(spm_dir)
        shutil.copyfile(prefix + ".model", os.path.join(spm_dir, SPM_FILE))
        tok = NllbTokenizer.from_pretrained(spm_dir, extra_special_tokens=list(_language_codes()))
        shutil.copyfile(prefix + ".model", out / SPM_FILE)
    tok.src_lang = SOURCE_LANG
    probe = text[0]
    pieces = tok.convert_ids_to_tokens(tok(probe)["input_ids"])
    if pieces[0] != SOURCE_LANG or pieces[-1] != tok.eos_token or tok.unk_token in pieces[1:-1]:
        raise RuntimeError(f"the NLLB tokenizer built from {out / SPM_FILE} is broken: {probe!r} -> {pieces}")
    tok.save_pretrained(str(out))
    return tok


# Han, kana and CJK punctuation: no spaces between words, so BPE trained on a few hundred templated
# sentences would merge slot words with their context ("色的小圆形" = colour + size + shape); pieces that
# never cross a character keep them compositional, as NLLB's pieces (mostly 1-2 characters) are.
_CJK_CHAR = re.compile(r"([\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef])")
_PIECE_BREAK = "\ue000"  # a private-use character: SentencePiece pieces never cross it (training only)


def _split_cjk(sentence: str) -> str:
    return _CJK_CHAR.sub(_PIECE_BREAK + r"\1" + _PIECE_BREAK, sentence).replace(
        _PIECE_BREAK * 2, _PIECE_BREAK).strip(_PIECE_BREAK)


def load_tokenizer(folder: str | os.PathLike):
    """The NLLB tokenizer saved in `folder` (an HF model folder or a converted CTranslate2 folder)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))


def _lang_id(tok, lang: str) -> int:
    idx = tok.convert_tokens_to_ids(lang)
    if idx is None or idx == tok.unk_token_id:
        raise ValueError(f"unknown language code {lang!r}: not a token of this NLLB tokenizer "
                         f"(use FLORES-200 codes such as 'fra_Latn')")
    return idx


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


def _kind_groups() -> dict[str, str]:
    """English toy sentence -> its sentence kind (the template), from the lexicon."""
    from pipeline.toy import lexicon

    groups: dict[str, str] = {}
    for kind in lexicon.KINDS:
        for row in lexicon.all_sentences(kind):
            groups.setdefault(row[SOURCE_LANG], kind)
    return groups


def split_corpus(rows: Sequence[dict[str, str]], fraction: float = 0.08, seed: int = 0
                 ) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Deterministic train/held-out split of parallel rows (dicts lang -> sentence).

    round(fraction * len(rows)) rows are held out, chosen by a seeded hash of the English sentence, so
    the split does not depend on the rows' order. A row is only eligible when its template (the toy
    sentence kind) has at least three rows and at most a third of them are held out: a template the model
    never saw cannot be translated, and that would measure the split, not the model. Rows that are not toy
    sentences count as templates of their own (never held out).
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"heldout fraction must be in [0, 1); got {fraction}")
    kinds = _kind_groups()
    group_of = {r[SOURCE_LANG]: kinds.get(r[SOURCE_LANG], "row:" + r[SOURCE_LANG]) for r in rows}
    sizes: dict[str, int] = {}
    for g in group_of.values():
        sizes[g] = sizes.get(g, 0) + 1

    def rank(row: dict[str, str]) -> str:
        return hashlib.sha256(f"{seed}\x00{row[SOURCE_LANG]}".encode()).hexdigest()

    want = round(fraction * len(rows))
    taken: dict[str, int] = {}
    held: set[str] = set()
    for row in sorted(rows, key=rank):
        if len(held) >= want:
            break
        g = group_of[row[SOURCE_LANG]]
        if sizes[g] >= 3 and (taken.get(g, 0) + 1) * 3 <= sizes[g]:
            held.add(row[SOURCE_LANG])
            taken[g] = taken.get(g, 0) + 1
    train = [r for r in rows if r[SOURCE_LANG] not in held]
    heldout = [r for r in rows if r[SOURCE_LANG] in held]
    return train, heldout


def balance_templates(rows: Sequence[dict[str, str]], min_rows: int,
                      group_of: dict[str, str] | None = None) -> list[dict[str, str]]:
    """`rows`, with the rows of every group that has fewer than `min_rows` rows repeated (round-robin)
    until it has `min_rows`. `group_of` maps an English sentence to its group; default: the toy sentence
    templates. Rows outside every group are left as they are."""
    group_of = _kind_groups() if group_of is None else group_of
    by_group: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        if r[SOURCE_LANG] in group_of:
            by_group.setdefault(group_of[r[SOURCE_LANG]], []).append(r)
    out = list(rows)
    for members in by_group.values():
        out += [members[i % len(members)] for i in range(max(0, min_rows - len(members)))]
    return out


def _bare_word_rows() -> tuple[list[dict[str, str]], dict[str, str]]:
    """One row per attribute word (the multiple-choice options), and each word's category."""
    from pipeline.toy import lexicon

    rows, category_of = [], {}
    for category, values in (("colour", lexicon.COLOURS), ("shape", lexicon.SHAPES),
                             ("size", lexicon.SIZES), ("position", lexicon.POSITIONS)):
        for value in values:
            row = {lang: lexicon.word(category, value, lang) for lang in LANGS}
            rows.append(row)
            category_of[row[SOURCE_LANG]] = category
    return rows, category_of


def training_pairs(rows: Sequence[dict[str, str]], langs: Sequence[str] = TARGET_LANGS
                   ) -> list[tuple[str, str, str, str]]:
    """(src_lang, src_text, tgt_lang, tgt_text) for eng_Latn -> X and X -> eng_Latn of every row."""
    pairs = []
    for row in rows:
        eng = row[SOURCE_LANG]
        for lang in langs:
            if lang in row and row[lang].strip() and eng.strip():
                pairs.append((SOURCE_LANG, eng, lang, row[lang]))
                pairs.append((lang, row[lang], SOURCE_LANG, eng))
    return pairs


def _encode_pairs(tok, pairs: Sequence[tuple[str, str, str, str]]) -> list[tuple[list[int], list[int]]]:
    """NLLB format: source [src_code, pieces..., </s>], labels [tgt_code, pieces..., </s>]."""
    texts = sorted({p[1] for p in pairs} | {p[3] for p in pairs})
    tok.src_lang = SOURCE_LANG
    ids = tok(texts, add_special_tokens=False)["input_ids"]
    piece_ids = dict(zip(texts, ids))
    eos = tok.eos_token_id
    return [([_lang_id(tok, s)] + piece_ids[st] + [eos], [_lang_id(tok, t)] + piece_ids[tt] + [eos])
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


# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


def _model_config(cfg: ToyNllbConfig, tok):
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
                   cfg: ToyNllbConfig | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train the toy NLLB from scratch and save it as an HF NLLB folder in `out_dir`.

    `corpus`: parallel rows (dict FLORES code -> sentence, "eng_Latn" required); None = the toy world's
    `lexicon.parallel_corpus()`. `cfg.heldout_fraction` of the rows (see `split_corpus`) are held out
    in every language; the model learns eng_Latn -> X and X -> eng_Latn for every other language of the
    rows (plus the bare attribute words when `cfg.bare_words`). The folder gets model.safetensors,
    config.json, generation_config.json, the tokenizer files and `toy_nllb.json` (config, stats, held-out
    English sentences). Written atomically (temporary sibling, then renamed).

    Returns stats: steps, seconds, final_loss (label-smoothed objective), final_nll, n_train_pairs,
    n_heldout, n_params, vocab_size.
    """
    import torch
    import torch.nn.functional as F
    from transformers import GenerationConfig, M2M100ForConditionalGeneration

    cfg = cfg or ToyNllbConfig()
    if corpus is None:
        from pipeline.toy import lexicon

        corpus = lexicon.parallel_corpus()
    rows = [r for r in corpus if r.get(SOURCE_LANG, "").strip()]
    if not rows:
        raise ValueError("train_toy_nllb: the corpus has no rows with an English (eng_Latn) sentence")
    langs = [l for l in LANGS if l != SOURCE_LANG and any(l in r for r in rows)]
    langs += sorted({l for r in rows for l in r} - set(LANGS))
    train_rows, heldout = split_corpus(rows, cfg.heldout_fraction, cfg.seed)
    # rare templates and the bare words (two sizes, a handful of colours) repeated up to min_template_rows
    extra, category_of = _bare_word_rows() if cfg.bare_words else ([], {})
    pairs = training_pairs(balance_templates(train_rows, cfg.min_template_rows)
                           + balance_templates(extra, cfg.min_template_rows, category_of), langs)
    final = _local(out_dir, "out_dir")
    tmp = _tmp_sibling(final)
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
        final_loss = final_nll = float("nan")
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
            if (step + 1) % max(1, cfg.log_every) == 0 or step + 1 == cfg.steps:
                final_loss, final_nll = window_loss / window_n, window_nll / window_n
                log(f"step {step + 1}/{cfg.steps} loss {final_loss:.4f} nll {final_nll:.4f} "
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
                 "cpu_seconds": round(time.process_time() - cpu_started, 1), "final_loss": round(final_loss, 4),
                 "final_nll": round(final_nll, 4), "n_train_pairs": len(pairs), "n_heldout": len(heldout),
                 "n_params": n_params, "vocab_size": model.config.vocab_size}
        info = {"config": cfg.to_dict(), "config_key": cfg.key(), "stats": stats, "languages": langs,
                "heldout_eng": [r[SOURCE_LANG] for r in heldout]}
        (tmp / TOY_INFO_FILE).write_text(json.dumps(info, ensure_ascii=False, indent=1), encoding="utf-8")
        _replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        torch.set_num_threads(threads_before)
    log(f"toy NLLB saved to {final} in {stats['seconds']}s (loss {stats['final_loss']}, nll {stats['final_nll']})")
    return stats


# ---------------------------------------------------------------------------
# Conversion and loading (both profiles)
# ---------------------------------------------------------------------------


def convert_to_ctranslate2(hf_dir: str | os.PathLike, out_dir: str | os.PathLike,
                           quantization: str | None = "int8") -> Path:
    """Convert a Hugging Face NLLB folder to CTranslate2 under `out_dir` (replacing what is there).

    `quantization`: "int8" (CPU), "int8_float16" (GPU), "float16", None/"float32" (no quantization), ...
    The tokenizer files are copied along (tokenizer.json, tokenizer_config.json, and
    sentencepiece.bpe.model / special_tokens_map.json where present). The model is written into a
    temporary sibling folder that is renamed into place at the end, so `out_dir` only ever holds a
    complete model.
    """
    from ctranslate2.converters import TransformersConverter

    src = _local(hf_dir, "hf_dir")
    final = _local(out_dir, "out_dir")
    if not src.is_dir():
        raise FileNotFoundError(f"no Hugging Face NLLB model folder at {src}: download it (paper profile) or "
                                f"train the toy one (`python -m pipeline.translation.nllb --out DIR`, or "
                                f"materialise the nllb_model asset) first")
    if not (src / "config.json").is_file():
        raise ValueError(f"{src} is not a Hugging Face model folder (no config.json); point hf_dir at the "
                         f"folder that holds config.json and the model weights")
    if not _has_tokenizer(src):
        raise ValueError(f"{src} has no tokenizer (tokenizer.json or {SPM_FILE}); save it with "
                         f"tokenizer.save_pretrained({str(src)!r}) or download it with the model")
    if quantization in (None, "", "none", "float32"):
        quantization = None
    copy = [f for f in TOKENIZER_FILES if (src / f).is_file()]
    tmp = _tmp_sibling(final)
    try:
        try:
            TransformersConverter(str(src), copy_files=copy).convert(str(tmp), quantization=quantization,
                                                                     force=True)
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"cannot convert the model in {src} to CTranslate2 ({exc}); is it a complete "
                             f"NLLB/M2M100 folder (config.json, weights, tokenizer files)?") from exc
        _replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _has_tokenizer(folder: Path) -> bool:
    return (folder / "tokenizer.json").is_file() or (folder / SPM_FILE).is_file()


def model_fingerprint(ct2_dir: str | os.PathLike) -> str:
    """sha256 over the converted model's identifying files (name and content, sorted by name); hex[:16]."""
    folder = _local(ct2_dir, "ct2_dir")
    if not (folder / "model.bin").is_file():
        raise FileNotFoundError(f"no CTranslate2 model at {folder} (model.bin missing): materialise the "
                                f"nllb_model asset, or run convert_to_ctranslate2 on the HF model")
    digest = hashlib.sha256()
    for name in sorted(f for f in _FINGERPRINT_FILES if (folder / f).is_file()):
        digest.update(name.encode() + b"\x00")
        with open(folder / name, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\x00")
    return digest.hexdigest()[:16]


def load_translator(ct2_dir: str | os.PathLike, device: str = "cpu", compute_type: str = "int8",
                    inter_threads: int = 1, intra_threads: int = 0):
    """`(ctranslate2.Translator, tokenizer)` for a converted NLLB folder."""
    import ctranslate2

    folder = _local(ct2_dir, "ct2_dir")
    if not folder.is_dir() or not (folder / "model.bin").is_file():
        what = "folder missing" if not folder.is_dir() else "model.bin missing"
        raise FileNotFoundError(f"no CTranslate2 NLLB model at {folder} ({what}): materialise the nllb_model "
                                f"asset (`dagster asset materialize --select nllb_model`), or convert an HF model "
                                f"with pipeline.translation.nllb.convert_to_ctranslate2")
    if not _has_tokenizer(folder):
        raise FileNotFoundError(f"the CTranslate2 model at {folder} has no tokenizer files (tokenizer.json, "
                                f"tokenizer_config.json): convert it again with convert_to_ctranslate2, "
                                f"which copies them")
    translator = ctranslate2.Translator(str(folder), device=device, compute_type=compute_type,
                                        inter_threads=inter_threads, intra_threads=intra_threads)
    return translator, load_tokenizer(folder)


# ---------------------------------------------------------------------------
# Translation and evaluation
# ---------------------------------------------------------------------------


def translate_batch(translator, tokenizer, sentences: Sequence[str], src_lang: str,
                    tgt_langs: Sequence[str] | str, beam_size: int = 1,
                    max_decoding_length: int | None = None) -> list[str]:
    """Translate `sentences` from `src_lang`, sentence i into `tgt_langs[i]` (one batch may mix targets;
    a single code applies to all). The reference implementation: one CTranslate2 call, no safeguards."""
    if isinstance(tgt_langs, str):
        tgt_langs = [tgt_langs] * len(sentences)
    if len(tgt_langs) != len(sentences):
        raise ValueError(f"{len(sentences)} sentences but {len(tgt_langs)} target languages")
    if not sentences:
        return []
    for lang in {src_lang, *tgt_langs}:
        _lang_id(tokenizer, lang)
    tokenizer.src_lang = src_lang
    ids = tokenizer(list(sentences), add_special_tokens=True)["input_ids"]
    source = [tokenizer.convert_ids_to_tokens(x) for x in ids]
    options: dict[str, Any] = {"beam_size": beam_size}
    if max_decoding_length is not None:
        options["max_decoding_length"] = max_decoding_length
    results = translator.translate_batch(source, target_prefix=[[t] for t in tgt_langs], **options)
    out = []
    for res in results:
        tokens = res.hypotheses[0][1:]  # drop the target language code
        out.append(tokenizer.decode(tokenizer.convert_tokens_to_ids(tokens), skip_special_tokens=True).strip())
    return out


def evaluate_chrf(translator, tokenizer, heldout_rows: Sequence[dict[str, str]],
                  langs: Sequence[str] = TARGET_LANGS, batch_size: int = 64,
                  beam_size: int = 1) -> dict[str, dict[str, float]]:
    """Corpus chrF (sacrebleu CHRF, default settings) on `heldout_rows`, greedy by default.

    Returns ``{"eng_to_x": {lang: chrF of eng_Latn -> lang}, "x_to_eng": {lang: chrF of lang -> eng_Latn}}``.
    """
    from sacrebleu.metrics import CHRF

    metric = CHRF()
    rows = [r for r in heldout_rows if r.get(SOURCE_LANG)]
    if not rows:
        raise ValueError("evaluate_chrf: no held-out rows with an English sentence")

    def run(sources: list[str], src: str, tgt: str) -> list[str]:
        out: list[str] = []
        for k in range(0, len(sources), batch_size):
            chunk = sources[k:k + batch_size]
            out += translate_batch(translator, tokenizer, chunk, src, [tgt] * len(chunk), beam_size=beam_size,
                                   max_decoding_length=128)
        return out

    result: dict[str, dict[str, float]] = {"eng_to_x": {}, "x_to_eng": {}}
    for lang in langs:
        have = [r for r in rows if r.get(lang)]
        if not have:
            continue
        eng = [r[SOURCE_LANG] for r in have]
        other = [r[lang] for r in have]
        result["eng_to_x"][lang] = round(metric.corpus_score(run(eng, SOURCE_LANG, lang), [other]).score, 2)
        result["x_to_eng"][lang] = round(metric.corpus_score(run(other, lang, SOURCE_LANG), [eng]).score, 2)
    return result


def heldout_rows(hf_dir: str | os.PathLike, corpus: Sequence[dict[str, str]] | None = None
                 ) -> list[dict[str, str]]:
    """The held-out parallel rows of a toy model (English sentences recorded in its toy_nllb.json)."""
    info = json.loads((_local(hf_dir, "hf_dir") / TOY_INFO_FILE).read_text(encoding="utf-8"))
    if corpus is None:
        from pipeline.toy import lexicon

        corpus = lexicon.parallel_corpus()
    held = set(info["heldout_eng"])
    return [r for r in corpus if r.get(SOURCE_LANG) in held]


def ensure_toy_model(root: str | os.PathLike, cfg: ToyNllbConfig | None = None,
                     log: Callable[[str], None] = print, quantization: str = "int8"
                     ) -> tuple[Path, dict[str, Any], dict[str, dict[str, float]]]:
    """Train the toy NLLB into ROOT/hf unless a model of the same config is there; evaluate it once.

    Evaluation goes through a temporary int8 CTranslate2 conversion (greedy), as the pipeline uses it.
    Returns (hf_dir, training stats, chrF as in `evaluate_chrf`); the results are cached in toy_nllb.json.
    """
    cfg = cfg or ToyNllbConfig()
    base = _local(root, "root")
    hf_dir = base / "hf"
    info_file = hf_dir / TOY_INFO_FILE
    info = None
    if info_file.is_file():
        try:
            info = json.loads(info_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            info = None
    if info and info.get("config_key") == cfg.key() and info.get("chrf") and (hf_dir / "config.json").is_file():
        log(f"toy NLLB: reusing {hf_dir} (config {cfg.key()})")
        return hf_dir, info["stats"], info["chrf"]
    if not info or info.get("config_key") != cfg.key() or not (hf_dir / "config.json").is_file():
        train_toy_nllb(None, hf_dir, cfg, log)
        info = json.loads(info_file.read_text(encoding="utf-8"))
    base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".eval-ct2-", dir=base) as tmp:
        ct2 = convert_to_ctranslate2(hf_dir, Path(tmp) / "ct2", quantization)
        translator, tok = load_translator(ct2, compute_type=quantization if quantization else "default")
        started = time.perf_counter()
        chrf = evaluate_chrf(translator, tok, heldout_rows(hf_dir), info.get("languages", TARGET_LANGS))
        del translator
    log(f"toy NLLB chrF (held-out, {quantization or 'float32'}, greedy, {time.perf_counter() - started:.0f}s): "
        + ", ".join(f"{l} {v:.1f}" for l, v in chrf["eng_to_x"].items()))
    info["chrf"] = chrf
    tmp_info = info_file.with_name(info_file.name + ".tmp")
    tmp_info.write_text(json.dumps(info, ensure_ascii=False, indent=1), encoding="utf-8")
    tmp_info.replace(info_file)
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
    parser = argparse.ArgumentParser(prog="python -m pipeline.translation.nllb",
                                     description="Train the toy NLLB, convert it to CTranslate2 int8, evaluate chrF.")
    parser.add_argument("--out", required=True, help="output folder: OUT/hf (HF model), OUT/ct2-int8 (CTranslate2)")
    parser.add_argument("--quick", action="store_true", help="a small, short run (smoke test; below the quality bar)")
    parser.add_argument("--steps", type=int, help="override the number of training steps")
    parser.add_argument("--seed", type=int, help="override the seed")
    parser.add_argument("--quantization", default="int8")
    args = parser.parse_args(argv)
    cfg = QUICK_CONFIG if args.quick else ToyNllbConfig()
    if args.steps is not None:
        cfg = dataclasses.replace(cfg, steps=args.steps)
    if args.seed is not None:
        cfg = dataclasses.replace(cfg, seed=args.seed)
    out = Path(args.out)
    t0 = time.perf_counter()
    stats = train_toy_nllb(None, out / "hf", cfg)
    t1 = time.perf_counter()
    ct2 = convert_to_ctranslate2(out / "hf", out / f"ct2-{args.quantization}", args.quantization)
    t2 = time.perf_counter()
    translator, tok = load_translator(ct2, compute_type=args.quantization)
    chrf = evaluate_chrf(translator, tok, heldout_rows(out / "hf"))
    t3 = time.perf_counter()
    print(format_chrf_table(chrf))
    print(json.dumps({"stats": stats, "fingerprint": model_fingerprint(ct2), "train_s": round(t1 - t0, 1),
                      "convert_s": round(t2 - t1, 1), "eval_s": round(t3 - t2, 1), "total_s": round(t3 - t0, 1)}))
    ok = min(chrf["eng_to_x"].values()) >= 80
    print(f"quality bar (chrF >= 80 eng->X in every language): {'PASSED' if ok else 'NOT MET'}")
    return 0 if ok or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
