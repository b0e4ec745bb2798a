"""The toy profile's tiny Llama: a Llama-3-style byte-level BPE tokenizer and a short pretraining.

`train_toy_llama(out_dir, settings)` trains a byte-level BPE (`tokenizers`, the Llama-3 split regex) on
every toy sentence in all eleven languages, appends the 256 Llama-3 special tokens in Llama-3's order
(`<|begin_of_text|>`, `<|end_of_text|>`, reserved 0-3, headers, reserved 4, `<|eot_id|>`, reserved 5-250)
and the chat template, then pretrains a `LlamaForCausalLM` briefly on the same text and reports held-out
perplexity per language. The folder is laid out as a hub checkpoint, so `pipeline.model.build_model` loads
it exactly like `meta-llama/Meta-Llama-3-8B-Instruct`. `ensure_toy_llama(folder, settings)` trains into `folder` once per settings.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import shutil
import sys
import time
from pathlib import Path

import torch

from pipeline.config import ToyLlamaSettings
from pipeline.languages import LANGS
from pipeline.model.chat import CHAT_TEMPLATE, encode
from pipeline.toy import lexicon
from pipeline.toy.info import read_info, write_info
from pipeline.toy.world import instruct_conversations

RECIPE_VERSION = 4  # 2: instruct tuning on chat conversations beside the plain sentences; 3: scenes told in English;
# 4: multiple choice a settable share, in settable languages
INFO_FILE = "toy_llama.json"
#: the Llama-3 pre-tokenizer split pattern
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QUICK = ToyLlamaSettings(vocab_size=600, hidden_size=32, intermediate_size=64, steps=30, batch_size=16,
                         instruct_conversations=200, instruct_batch=4)


def special_tokens() -> list[str]:
    names = ["<|begin_of_text|>", "<|end_of_text|>"] + [f"<|reserved_special_token_{i}|>" for i in range(4)]
    names += ["<|start_header_id|>", "<|end_header_id|>", "<|reserved_special_token_4|>", "<|eot_id|>"]
    names += [f"<|reserved_special_token_{i}|>" for i in range(5, 251)]
    return names


def toy_text() -> list[dict[str, str]]:
    """Every toy sentence, as dict lang -> sentence (eleven languages)."""
    return lexicon.parallel_corpus()


def build_tokenizer(sentences: list[str], vocab_size: int, out_dir: Path):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(sentences, trainer)
    tok.add_special_tokens(special_tokens())
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                   clean_up_tokenization_spaces=False)
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(out_dir)
    return fast


def settings_key(settings: ToyLlamaSettings) -> str:
    blob = json.dumps({"recipe": RECIPE_VERSION, **settings.model_dump()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _split(rows: list[dict[str, str]], fraction: float, seed: int):
    rng = random.Random(seed)
    idx = list(range(len(rows)))
    rng.shuffle(idx)
    n = int(len(rows) * fraction)
    held = set(idx[:n])
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]


def _batch(seqs: list[list[int]], pad: int):
    width = max(map(len, seqs))
    ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs])
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
    labels = ids.masked_fill(mask == 0, -100)
    return ids, mask, labels


def _chat(tok, conversation) -> tuple[list[int], list[int]]:
    enc = encode(tok, conversation, "", 0, False, max_tokens=10_000)
    return enc.input_ids, enc.labels


def _chat_batch(seqs, pad: int):
    width = max(len(ids) for ids, _ in seqs)
    ids = torch.tensor([s + [pad] * (width - len(s)) for s, _ in seqs])
    labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in seqs])
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s, _ in seqs])
    return ids, mask, labels


def _chat_loss(model, seqs, pad: int):
    ids, mask, labels = _chat_batch(seqs, pad)
    return model(input_ids=ids, attention_mask=mask, labels=labels).loss


def _perplexity(model, batches) -> float:
    """exp(mean loss over the supervised tokens) of (ids, mask, labels) batches."""
    total, count = 0.0, 0
    for ids, mask, labels in batches:
        n = int((labels[:, 1:] != -100).sum())
        total += float(model(input_ids=ids, attention_mask=mask, labels=labels).loss) * n
        count += n
    return round(math.exp(total / max(count, 1)), 3)


@torch.no_grad()
def answer_perplexity(model, tok, conversations, pad: int) -> float | None:
    """Held-out perplexity of the answers of chat conversations (the instruct part)."""
    if not conversations:
        return None
    model.eval()
    seqs = [_chat(tok, c) for c in conversations]
    return _perplexity(model, (_chat_batch(seqs[i:i + 64], pad) for i in range(0, len(seqs), 64)))


@torch.no_grad()
def perplexity(model, tok, rows: list[dict[str, str]], langs=LANGS) -> dict[str, float]:
    """Held-out perplexity per language (tokens after BOS)."""
    model.eval()
    pad = tok.convert_tokens_to_ids("<|reserved_special_token_0|>")
    out = {}
    for lang in langs:
        seqs = [[tok.bos_token_id] + tok(r[lang], add_special_tokens=False)["input_ids"]
                + [tok.convert_tokens_to_ids("<|end_of_text|>")] for r in rows]
        out[lang] = _perplexity(model, (_batch(seqs[i:i + 64], pad) for i in range(0, len(seqs), 64)))
    return out


def train_toy_llama(out_dir: str | Path, settings: ToyLlamaSettings = ToyLlamaSettings(),
                    log=print) -> dict:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(settings.seed)
    torch.set_num_threads(settings.threads)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = toy_text()
    train, held = _split(rows, settings.heldout_fraction, settings.seed)
    chats = instruct_conversations(settings.instruct_conversations, settings.seed, mc_fraction=settings.instruct_mc_fraction,
                                   mc_langs=tuple(settings.instruct_mc_langs))
    chats_train, chats_held = _split(chats, settings.heldout_fraction, settings.seed)
    tok = build_tokenizer([r[lang] for r in train for lang in LANGS]
                          + [t["value"] for c in chats_train for t in c], settings.vocab_size, out)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=settings.hidden_size,
                      intermediate_size=settings.intermediate_size, num_hidden_layers=settings.num_layers,
                      num_attention_heads=settings.num_heads, num_key_value_heads=settings.num_kv_heads,
                      max_position_embeddings=settings.max_positions, initializer_range=settings.initializer_range,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg)
    eot_text = tok.convert_tokens_to_ids("<|end_of_text|>")
    pad = tok.convert_tokens_to_ids("<|reserved_special_token_0|>")
    seqs = [[tok.bos_token_id] + ids + [eot_text] for ids in
            tok([r[lang] for r in train for lang in LANGS], add_special_tokens=False)["input_ids"]]
    chat_seqs = [_chat(tok, c) for c in chats_train]
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=settings.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(settings.warmup_steps, 1))
                                              * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * s / settings.steps))))
    rng = random.Random(settings.seed)
    started = time.perf_counter()
    model.train()
    first = last = None
    for step in range(settings.steps):
        ids, mask, labels = _batch(rng.sample(seqs, settings.batch_size), pad)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        if chat_seqs and settings.instruct_batch:
            loss = loss + _chat_loss(model, rng.sample(chat_seqs, settings.instruct_batch), pad)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(); sched.step(); opt.zero_grad()
        first = float(loss.detach()) if first is None else first
        last = float(loss.detach())
        if (step + 1) % 100 == 0:
            log(f"toy llama step {step + 1}/{settings.steps} loss {last:.3f}")
    model.save_pretrained(out)
    info = {"settings": settings.model_dump(), "key": settings_key(settings), "first_loss": first,
            "last_loss": last, "seconds": round(time.perf_counter() - started, 1),
            "heldout_sentences": len(held), "heldout_perplexity": perplexity(model, tok, held),
            "heldout_conversations": len(chats_held),
            "heldout_answer_perplexity": answer_perplexity(model, tok, chats_held, pad),
            "vocab_size": len(tok)}
    write_info(out / INFO_FILE, info)
    return info


def ensure_toy_llama(folder: str | Path, settings: ToyLlamaSettings = ToyLlamaSettings(), log=print) -> Path:
    """Train into `folder` unless it already holds the Llama of these settings (its info file records the
    key) and return it (a hub-style Llama checkpoint). Trained in a sibling and swapped in whole."""
    final, key = Path(folder), settings_key(settings)
    info = read_info(final / INFO_FILE)
    if info and info.get("key") == key and (final / "config.json").is_file():
        return final
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    train_toy_llama(tmp, settings, log)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args(argv)
    path = ensure_toy_llama(a.out, QUICK if a.quick else ToyLlamaSettings())
    print(path)
    print(json.dumps(json.loads((path / INFO_FILE).read_text())["heldout_perplexity"], ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
