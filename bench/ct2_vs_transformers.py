"""CTranslate2 vs transformers ``generate`` on the same NLLB-architecture weights, on CPU.

What it does (all in one process, nothing downloaded):

1. Builds an NLLB-like ``M2M100ForConditionalGeneration`` (d_model 512, 6+6 layers, 8 heads,
   ffn 2048, scale_embedding, NLLB special ids pad 1 / bos 0 / eos 2 / decoder start 2), seeded
   random init, plus a real ``NllbTokenizer`` built from a SentencePiece model trained here on
   generated text (REFERENCE.md section 5), saves both (safetensors) and converts the folder twice
   with ``ctranslate2.converters.TransformersConverter``: int8 and float32.
2. Makes N fixed source sequences ``[src_lang, ids..., </s>]`` (ids drawn with a seed), sorted by
   length so both engines see the same batches with the same padding.
3. Times transformers fp32 ``generate`` and CTranslate2 int8 / fp32 with every output forced to
   exactly L new tokens after the target-language token (transformers: ``forced_bos_token_id`` and
   ``min_new_tokens = max_new_tokens = L + 1``; CTranslate2: ``target_prefix=[[lang]]`` and
   ``min_decoding_length = max_decoding_length = L + 1``, the prefix counts there). Generated
   tokens are counted from the outputs and must match between engines. Greedy and beam 4, a
   warm-up per engine, best and median of R repetitions, repetitions interleaved across engines
   so that outside load hits every engine alike. Thread settings: torch with --threads and with 1
   thread (a setting whose warm-up is > --drop-slower times the faster one is not timed further),
   CTranslate2 intra_threads=T/inter_threads=1 and intra_threads=1/inter_threads=T; the summary
   takes the fastest setting of each engine.
4. Checks that CTranslate2 float32 greedy gives the same tokens as transformers greedy (natural
   stopping, short max length).
5. Prints a table and writes ``bench/results/ct2_vs_transformers.json``.

Run:  python bench/ct2_vs_transformers.py            (full, a few minutes on 2 cores)
      python bench/ct2_vs_transformers.py --quick    (smoke run, about a minute)
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ctranslate2
import sentencepiece as spm
import torch
import transformers
from ctranslate2.converters import TransformersConverter
from transformers import M2M100Config, M2M100ForConditionalGeneration
from transformers.models.nllb.tokenization_nllb import FAIRSEQ_LANGUAGE_CODES, NllbTokenizer

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "ct2_vs_transformers.json"

SRC_LANG = "eng_Latn"
TGT_LANG = "fra_Latn"
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 1, 0, 2, 3


# --------------------------------------------------------------------------- model building


def _pseudo_text(n_lines: int, seed: int) -> list[str]:
    """Word-like random text for training the SentencePiece model."""
    rng = random.Random(seed)
    syll = [a + b for a in "bcdfghklmnprstvz" for b in "aeiou"] + list("aeiou")
    words = ["".join(rng.choice(syll) for _ in range(rng.randint(1, 4))) for _ in range(20000)]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(5, 20))) for _ in range(n_lines)]


def build_tokenizer(hf_dir: Path, spm_vocab: int, seed: int) -> NllbTokenizer:
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_pseudo_text(20000, seed)),
        model_prefix=str(hf_dir / "sentencepiece.bpe"),
        vocab_size=spm_vocab, model_type="bpe", character_coverage=1.0,
        bos_id=BOS_ID, pad_id=PAD_ID, eos_id=EOS_ID, unk_id=UNK_ID,
        num_threads=2, minloglevel=2,
    )
    # transformers 5: NllbTokenizer(vocab_file=...) ignores the SentencePiece file; from_pretrained
    # on the folder with extra_special_tokens gives the NLLB layout (spm pieces, then 202 language
    # codes, then <mask>).
    tok = NllbTokenizer.from_pretrained(str(hf_dir), extra_special_tokens=FAIRSEQ_LANGUAGE_CODES)
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (
        BOS_ID, PAD_ID, EOS_ID, UNK_ID)
    tok.save_pretrained(str(hf_dir))
    return tok


def build_model(vocab_size: int, args, seed: int) -> M2M100ForConditionalGeneration:
    cfg = M2M100Config(
        vocab_size=vocab_size, d_model=args.d_model,
        encoder_layers=args.layers, decoder_layers=args.layers,
        encoder_attention_heads=args.heads, decoder_attention_heads=args.heads,
        encoder_ffn_dim=args.ffn, decoder_ffn_dim=args.ffn,
        activation_function="relu", scale_embedding=True, max_position_embeddings=1024,
        pad_token_id=PAD_ID, bos_token_id=BOS_ID, eos_token_id=EOS_ID, decoder_start_token_id=EOS_ID,
        dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
        encoder_layerdrop=0.0, decoder_layerdrop=0.0, tie_word_embeddings=True,
        tokenizer_class="NllbTokenizer",
    )
    torch.manual_seed(seed)
    model = M2M100ForConditionalGeneration(cfg).eval()
    # Default init (std 0.02) makes a random pre-norm model repeat one token forever. Larger weights
    # (and sharper attention) give varied outputs, so the equality check compares real choices. Much
    # larger (e.g. 0.15 / q,k 0.3) makes the random network chaotic: fp32 rounding differences grow
    # to ~1e-2 in the logits and greedy outputs split on near-ties, which says nothing about CT2.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "shared" in name or "embed_tokens" in name:
                p.normal_(0.0, 0.03)
            elif p.dim() == 2:
                p.normal_(0.0, 0.2 if ("q_proj" in name or "k_proj" in name) else 0.1)
            elif name.endswith(".bias") and "layer_norm" not in name:
                p.normal_(0.0, 0.02)
    return model


def build_everything(work: Path, args, seed: int) -> dict:
    hf_dir = work / "hf"
    hf_dir.mkdir(parents=True)
    t0 = time.perf_counter()
    tok = build_tokenizer(hf_dir, args.spm_vocab, seed)
    model = build_model(len(tok), args, seed)
    model.save_pretrained(str(hf_dir), safe_serialization=True)
    assert (hf_dir / "model.safetensors").is_file()
    t_build = time.perf_counter() - t0

    ct2_dirs, t_conv = {}, {}
    for quant in ("int8", "float32"):
        t0 = time.perf_counter()
        out = work / f"ct2_{quant}"
        TransformersConverter(str(hf_dir)).convert(str(out), quantization=quant, force=True)
        ct2_dirs[quant] = out
        t_conv[quant] = round(time.perf_counter() - t0, 2)

    vocab = json.loads((ct2_dirs["float32"] / "shared_vocabulary.json").read_text())
    assert vocab == json.loads((ct2_dirs["int8"] / "shared_vocabulary.json").read_text())
    # CTranslate2 works on token strings: its vocabulary index must equal the transformers id.
    assert len(vocab) == model.config.vocab_size
    assert vocab == tok.convert_ids_to_tokens(list(range(len(vocab)))), "CT2 vocab != HF ids"
    n_params = sum(p.numel() for p in model.parameters())
    return dict(hf_dir=hf_dir, ct2_dirs=ct2_dirs, vocab=vocab, tok=tok, model=model,
                n_params=n_params, build_s=round(t_build, 2), convert_s=t_conv)


# --------------------------------------------------------------------------- engines


def make_sources(n: int, min_len: int, max_len: int, lo: int, hi: int, src_id: int, seed: int):
    rng = random.Random(seed)
    srcs = [[src_id] + [rng.randrange(lo, hi) for _ in range(rng.randint(min_len, max_len))] + [EOS_ID]
            for _ in range(n)]
    srcs.sort(key=len, reverse=True)  # same batches / padding for both engines
    return srcs


def _strip(tokens: list[int]) -> list[int]:
    """Content tokens up to (excluding) the first </s>."""
    return tokens[: tokens.index(EOS_ID)] if EOS_ID in tokens else tokens


def pad_batch(batch: list[list[int]], device: str = "cpu"):
    """Right-padded input ids and attention mask for `generate`."""
    width = max(map(len, batch))
    ids = torch.full((len(batch), width), PAD_ID, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for j, s in enumerate(batch):
        ids[j, : len(s)] = torch.tensor(s)
        mask[j, : len(s)] = 1
    return ids.to(device), mask.to(device)


class HFEngine:
    """transformers `generate`, batches of `batch_size` examples; `threads` None leaves torch's setting."""

    def __init__(self, model, tgt_id: int, threads: int | None, device: str = "cpu"):
        self.model, self.tgt_id, self.threads, self.device = model, tgt_id, threads, device

    def run(self, srcs, batch_size: int, beam: int, new_tokens: int, forced: bool):
        if self.threads:
            torch.set_num_threads(self.threads)
        outs = []
        with torch.inference_mode():
            for i in range(0, len(srcs), batch_size):
                ids, mask = pad_batch(srcs[i: i + batch_size], self.device)
                # new tokens counted by generate include the forced language token, hence + 1
                gen = self.model.generate(
                    input_ids=ids, attention_mask=mask, forced_bos_token_id=self.tgt_id,
                    num_beams=beam, do_sample=False, num_return_sequences=1,
                    max_new_tokens=new_tokens + 1, min_new_tokens=(new_tokens + 1) if forced else 0,
                )
                for row in gen.tolist():
                    assert row[0] == EOS_ID and row[1] == self.tgt_id, row[:3]
                    outs.append(_strip(row[2:]))
        return outs


class CT2Engine:
    def __init__(self, path: Path, compute_type: str, intra: int, inter: int, vocab: list[str], device: str = "cpu"):
        self.tr = ctranslate2.Translator(str(path), device=device, compute_type=compute_type,
                                         intra_threads=intra, inter_threads=inter)
        self.vocab = vocab
        self.index = {t: i for i, t in enumerate(vocab)}

    def run(self, srcs, batch_size: int, beam: int, new_tokens: int, forced: bool):
        src_tok = [[self.vocab[i] for i in s] for s in srcs]
        res = self.tr.translate_batch(
            src_tok, target_prefix=[[TGT_LANG]] * len(src_tok), beam_size=beam,
            max_batch_size=batch_size, batch_type="examples", num_hypotheses=1,
            # the target prefix counts in CTranslate2's decoding length, hence + 1
            max_decoding_length=new_tokens + 1, min_decoding_length=(new_tokens + 1) if forced else 1,
        )
        outs = []
        for r in res:
            hyp = r.hypotheses[0]
            assert hyp[0] == TGT_LANG, hyp[:2]
            outs.append(_strip([self.index[t] for t in hyp[1:]]))
        return outs


def _logit_gap(model, tgt_id: int, src: list[int], ct2: list[int], hf: list[int], pos: int) -> dict:
    """transformers fp32 logits at the first position where the outputs differ: how close was it?"""
    if pos >= min(len(ct2), len(hf)):
        return dict(note="one output is a prefix of the other (stopped at </s>)")
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([src]),
                       decoder_input_ids=torch.tensor([[EOS_ID, tgt_id] + hf[:pos]])).logits[0, -1]
    top = torch.topk(logits, 2)
    return dict(hf_token=hf[pos], ct2_token=ct2[pos],
                logit_hf_token=round(logits[hf[pos]].item(), 5), logit_ct2_token=round(logits[ct2[pos]].item(), 5),
                gap=round((logits[hf[pos]] - logits[ct2[pos]]).item(), 6),
                ct2_token_is_second_choice=top.indices[1].item() == ct2[pos],
                logit_std=round(logits.std().item(), 4))


def first_step_logit_diff(model, engine: "CT2Engine", srcs, tgt_id: int) -> dict:
    """Max |logit difference| between transformers fp32 and CTranslate2 at the first free step."""
    ids, mask = pad_batch(srcs)
    with torch.inference_mode():
        ref = model(input_ids=ids, attention_mask=mask,
                    decoder_input_ids=torch.tensor([[EOS_ID, tgt_id]] * len(srcs))).logits[:, -1]
    res = engine.tr.translate_batch([[engine.vocab[i] for i in s] for s in srcs],
                                    target_prefix=[[TGT_LANG]] * len(srcs), beam_size=1,
                                    max_decoding_length=2, return_logits_vocab=True)
    import numpy as np
    ct = torch.stack([torch.from_numpy(np.asarray(r.logits[0][1]).copy()) for r in res])
    keep = slice(4, None)  # special tokens may be masked by the decoder
    diff = (ct[:, keep] - ref[:, keep]).abs()
    return dict(n_sequences=len(srcs), max_abs_diff=float(diff.max()), mean_abs_diff=float(diff.mean()),
                logit_std=float(ref[:, keep].std()),
                same_argmax=int((ct[:, keep].argmax(-1) == ref[:, keep].argmax(-1)).sum()))


def timed(engine, *a):
    c0, t0 = time.process_time(), time.perf_counter()
    out = engine.run(*a)
    wall = time.perf_counter() - t0
    return out, wall, (time.process_time() - c0) / wall


# --------------------------------------------------------------------------- machine info


def machine_info(ct2_model: Path) -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = line.split(":", 1)[1].strip()
    except OSError:
        pass
    cpu_max = None
    if Path("/sys/fs/cgroup/cpu.max").is_file():
        cpu_max = Path("/sys/fs/cgroup/cpu.max").read_text().strip()
    # CTranslate2 logs its ISA / GEMM backend choice when CT2_VERBOSE=1 (read once, at start-up).
    ct2_backend = None
    try:
        p = subprocess.run(
            [sys.executable, "-c",
             f"import ctranslate2; ctranslate2.Translator({str(ct2_model)!r}, device='cpu', compute_type='int8')"],
            env={**os.environ, "CT2_VERBOSE": "1"}, capture_output=True, text=True, timeout=60)
        ct2_backend = [ln.split("[info]", 1)[1].strip() for ln in p.stderr.splitlines()
                       if "[info]" in ln and ("CPU" in ln or "ISA" in ln or "MKL" in ln or "backend" in ln)]
    except Exception as e:  # informative only
        ct2_backend = [f"unavailable: {e}"]
    import numpy
    import tokenizers
    env = {k: v for k, v in os.environ.items()
           if k.startswith(("OMP_", "MKL_", "OPENBLAS", "CT2_", "KMP_", "GOMP_", "NVPL_", "DNNL_", "ONEDNN_"))}
    return dict(
        cpu_model=cpu, os_cpu_count=os.cpu_count(), affinity_cpus=len(os.sched_getaffinity(0)),
        cgroup_cpu_max=cpu_max, mem_total=mem, platform=platform.platform(),
        python=platform.python_version(),
        versions=dict(torch=torch.__version__, transformers=transformers.__version__,
                      ctranslate2=ctranslate2.__version__, sentencepiece=spm.__version__,
                      tokenizers=tokenizers.__version__, numpy=numpy.__version__),
        torch_num_threads=torch.get_num_threads(),
        torch_cpu_capability=torch.backends.cpu.get_cpu_capability(),
        ct2_cpu_compute_types=sorted(ctranslate2.get_supported_compute_types("cpu")),
        ct2_backend_log=ct2_backend, env=env,
    )


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke run (~1 minute)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--d-model", type=int, default=512)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--ffn", type=int, default=2048)
    ap.add_argument("--spm-vocab", type=int, default=7800, help="SentencePiece pieces (+203 NLLB codes)")
    ap.add_argument("--n", type=int, default=None, help="number of source sequences")
    ap.add_argument("--new-tokens", type=int, default=None, help="L: forced output length")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--greedy-batch", type=int, nargs="+", default=None)
    ap.add_argument("--beam-batch", type=int, nargs="+", default=None)
    ap.add_argument("--eq-new-tokens", type=int, default=24, help="max length of the equality check")
    ap.add_argument("--drop-slower", type=float, default=1.5,
                    help="skip a transformers thread setting whose warm-up is this much slower than the best")
    ap.add_argument("--keep", action="store_true", help="keep the temporary model folder")
    args = ap.parse_args()
    q = args.quick
    args.n = args.n or (16 if q else 64)
    args.new_tokens = args.new_tokens or (12 if q else 24)
    args.reps = args.reps or (1 if q else 3)
    args.greedy_batch = args.greedy_batch or ([16] if q else [16, 32])
    args.beam_batch = args.beam_batch or ([16] if q else [16])
    if q:
        args.eq_new_tokens = min(args.eq_new_tokens, 12)

    t_start = time.perf_counter()
    started = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    load_start = os.getloadavg()
    torch.set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="ct2bench_"))
    try:
        built = build_everything(work, args, args.seed)
        vocab, tok, model = built["vocab"], built["tok"], built["model"]
        print(f"model: {built['n_params'] / 1e6:.1f}M params, vocab {len(vocab)}, build {built['build_s']}s,"
              f" convert {built['convert_s']}s  ({work})", flush=True)
        src_id, tgt_id = vocab.index(SRC_LANG), vocab.index(TGT_LANG)
        srcs = make_sources(args.n, 20, 40, 4, args.spm_vocab, src_id, args.seed + 1)
        n_src_tokens = sum(map(len, srcs))

        T = args.threads
        # torch with T intra-op threads is the obvious setting, but its OpenMP barriers collapse when
        # other processes share the cores; 1 thread is also timed and the faster one is the baseline.
        hf_engines = {f"transformers fp32 t{t}": HFEngine(model, tgt_id, t) for t in sorted({T, 1}, reverse=True)}
        engines = {
            **hf_engines,
            f"ct2 int8 intra{T}/inter1": CT2Engine(built["ct2_dirs"]["int8"], "int8", T, 1, vocab),
            f"ct2 int8 intra1/inter{T}": CT2Engine(built["ct2_dirs"]["int8"], "int8", 1, T, vocab),
            f"ct2 fp32 intra{T}/inter1": CT2Engine(built["ct2_dirs"]["float32"], "float32", T, 1, vocab),
            f"ct2 fp32 intra1/inter{T}": CT2Engine(built["ct2_dirs"]["float32"], "float32", 1, T, vocab),
        }
        info = machine_info(built["ct2_dirs"]["int8"])

        L = args.new_tokens
        runs = []
        forced_greedy_equal = {}
        plan = [("greedy", 1, b) for b in args.greedy_batch] + [("beam4", 4, b) for b in args.beam_batch]
        for eng in engines.values():  # first-call costs, so that no warm-up below pays them
            eng.run(srcs[:2], 2, 1, 2, True)
        warmups, skipped = {}, {}
        for mode, beam, bs in plan:
            # warm-up: one batch per engine, same settings; it also picks the transformers thread
            # count: a setting more than --drop-slower times slower than the best is not timed further
            warm = {name: timed(eng, srcs[:bs], bs, beam, L, True)[1] for name, eng in engines.items()}
            warmups[f"{mode} bs={bs}"] = {n: round(w, 3) for n, w in warm.items()}
            active = dict(engines)
            hf_fast = min(warm[n] for n in hf_engines)
            for n in hf_engines:
                if warm[n] > args.drop_slower * hf_fast:
                    del active[n]
                    skipped[f"{mode} bs={bs} {n}"] = f"warm-up {warm[n]:.2f}s vs {hf_fast:.2f}s"
                    print(f"{mode:6s} bs={bs:3d} {n:26s} skipped: warm-up {warm[n]:.2f}s vs {hf_fast:.2f}s", flush=True)
            hf_active = [n for n in hf_engines if n in active]
            times = {name: [] for name in active}
            utils = {name: [] for name in active}
            outputs = {}
            for _ in range(args.reps):  # interleaved so outside load hits all engines alike
                for name, eng in active.items():
                    out, wall, util = timed(eng, srcs, bs, beam, L, True)
                    times[name].append(wall)
                    utils[name].append(util)
                    outputs[name] = out
            ref = outputs[hf_active[0]]
            n_tok = sum(map(len, ref))
            assert all(len(o) == L for o in ref), "transformers did not produce exactly L tokens"
            for name, out in outputs.items():
                assert [len(o) for o in out] == [len(o) for o in ref], f"{name}: output lengths differ"
            hf_best = min(min(times[n]) for n in hf_active)
            hf_med = min(statistics.median(times[n]) for n in hf_active)
            for name in active:
                best, med = min(times[name]), statistics.median(times[name])
                runs.append(dict(
                    mode=mode, beam=beam, batch_size=bs, engine=name, n_sequences=len(srcs),
                    new_tokens_per_seq=L, generated_tokens=n_tok, times_s=[round(t, 3) for t in times[name]],
                    best_s=round(best, 3), median_s=round(med, 3),
                    tokens_per_s_best=round(n_tok / best, 1), tokens_per_s_median=round(n_tok / med, 1),
                    speedup_vs_transformers_best=round(hf_best / best, 2),
                    speedup_vs_transformers_median=round(hf_med / med, 2),
                    cpu_util=[round(u, 2) for u in utils[name]],
                ))
                print(f"{mode:6s} bs={bs:3d} {name:26s} best {best:7.2f}s  {n_tok / best:8.1f} tok/s"
                      f"  x{hf_best / best:5.2f}  (times {', '.join(f'{t:.2f}' for t in times[name])};"
                      f" cpu {', '.join(f'{u:.2f}' for u in utils[name])})", flush=True)
            if beam == 1:
                for name in active:
                    if name.startswith("ct2 fp32"):
                        same = sum(a == b for a, b in zip(outputs[name], ref))
                        forced_greedy_equal[f"{name} bs={bs}"] = f"{same}/{len(ref)}"

        # ---- equality: CT2 fp32 greedy vs transformers greedy, natural stopping, short max length
        eq_bs = max(args.greedy_batch)
        Le = args.eq_new_tokens
        hf_rows = [r for r in runs if r["mode"] == "greedy" and r["batch_size"] == eq_bs
                   and r["engine"].startswith("transformers")]
        hf = hf_engines[max(hf_rows, key=lambda r: r["tokens_per_s_best"])["engine"]]
        hf_out = hf.run(srcs, eq_bs, 1, Le, False)
        equality = {}
        for name in (f"ct2 fp32 intra{T}/inter1", f"ct2 int8 intra{T}/inter1"):
            ct_out = engines[name].run(srcs, eq_bs, 1, Le, False)
            same = sum(a == b for a, b in zip(ct_out, hf_out))
            tok_total = sum(max(len(a), len(b)) for a, b in zip(ct_out, hf_out))
            tok_same = sum(sum(x == y for x, y in zip(a, b)) for a, b in zip(ct_out, hf_out))
            first_diff = []
            for k, (a, b) in enumerate(zip(ct_out, hf_out)):
                if a != b:
                    pos = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
                    first_diff.append(dict(seq=k, position=pos, **_logit_gap(model, tgt_id, srcs[k], a, b, pos)))
            equality[name] = dict(identical_sequences=same, n_sequences=len(hf_out),
                                  same_position_tokens=tok_same, tokens=tok_total, first_differences=first_diff[:10])
        logit_check = {name: first_step_logit_diff(model, engines[name], srcs[:16], tgt_id)
                       for name in (f"ct2 fp32 intra{T}/inter1", f"ct2 int8 intra{T}/inter1")}
        eos_stops = sum(len(o) < Le for o in hf_out)
        distinct = len({t for o in hf_out for t in o})
        equality_meta = dict(max_new_tokens=Le, batch_size=eq_bs, transformers_engine=f"t{hf.threads}", hf_sequences_stopped_by_eos=eos_stops,
                             distinct_tokens_in_hf_output=distinct,
                             mean_distinct_tokens_per_seq=round(statistics.mean(len(set(o)) for o in hf_out), 2),
                             example_hf_output=tok.convert_ids_to_tokens(hf_out[0][:12]))

        # ---- summary: fastest thread setting per engine, by best and by median time
        summary = []
        for mode, beam, bs in plan:
            rows = [r for r in runs if r["mode"] == mode and r["batch_size"] == bs]
            for stat in ("best", "median"):
                key = f"tokens_per_s_{stat}"
                fam = {}
                for label, prefix in (("transformers", "transformers"), ("ct2_int8", "ct2 int8"),
                                      ("ct2_fp32", "ct2 fp32")):
                    r = max((r for r in rows if r["engine"].startswith(prefix)), key=lambda r: r[key])
                    fam[label] = (r[key], r["engine"].split()[-1])
                entry = dict(mode=mode, batch_size=bs, stat=stat,
                             transformers_tok_s=fam["transformers"][0], transformers_threads=fam["transformers"][1])
                for ct in ("int8", "fp32"):
                    tps, th = fam[f"ct2_{ct}"]
                    entry[f"ct2_{ct}_tok_s"] = tps
                    entry[f"ct2_{ct}_threads"] = th
                    entry[f"ct2_{ct}_speedup"] = round(tps / fam["transformers"][0], 2)
                summary.append(entry)

        wall = time.perf_counter() - t_start
        result = dict(
            benchmark="ct2_vs_transformers", started=started, wall_s=round(wall, 1),
            command="python " + " ".join([str(Path(sys.argv[0]))] + sys.argv[1:]),
            quick=q, loadavg_start=load_start, loadavg_end=os.getloadavg(),
            model=dict(arch="M2M100ForConditionalGeneration (NLLB layout)", d_model=args.d_model,
                       encoder_layers=args.layers, decoder_layers=args.layers, heads=args.heads,
                       ffn=args.ffn, vocab_size=len(vocab), params=built["n_params"],
                       tie_word_embeddings=True, scale_embedding=True,
                       special_ids=dict(bos=BOS_ID, pad=PAD_ID, eos=EOS_ID, unk=UNK_ID, decoder_start=EOS_ID),
                       init="seeded normal: embeddings 0.03, q/k 0.2, other matrices 0.1, biases 0.02",
                       build_s=built["build_s"], convert_s=built["convert_s"]),
            inputs=dict(n_sequences=len(srcs), source_tokens=n_src_tokens,
                        source_len_incl_lang_and_eos=[min(map(len, srcs)), max(map(len, srcs))],
                        src_lang=SRC_LANG, tgt_lang=TGT_LANG, sorted_by_length=True, seed=args.seed + 1),
            settings=dict(threads=args.threads, reps=args.reps, forced_new_tokens=L,
                          timing="best of reps after one warm-up batch per engine; reps interleaved",
                          drop_slower=args.drop_slower, warmup_s=warmups, skipped=skipped,
                          tokens_counted="new tokens after the target-language token, from the outputs"),
            machine=info, runs=runs, summary=summary,
            equality=dict(meta=equality_meta, results=equality, first_step_logits=logit_check,
                          forced_length_greedy_identical=forced_greedy_equal),
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")

        print()
        print(f"| mode | batch | of {args.reps} | transformers fp32 tok/s (threads) | CT2 int8 tok/s (threads) | x |"
              f" CT2 fp32 tok/s (threads) | x |")
        print("|---|---|---|---|---|---|---|---|")
        for e in summary:
            print(f"| {e['mode']} | {e['batch_size']} | {e['stat']} | {e['transformers_tok_s']} ({e['transformers_threads']})"
                  f" | {e['ct2_int8_tok_s']} "
                  f"({e['ct2_int8_threads']}) | {e['ct2_int8_speedup']} | {e['ct2_fp32_tok_s']} "
                  f"({e['ct2_fp32_threads']}) | {e['ct2_fp32_speedup']} |")
        print()
        for name, e in equality.items():
            print(f"equality greedy (max {Le} new tokens) {name} vs transformers: "
                  f"{e['identical_sequences']}/{e['n_sequences']} identical sequences, "
                  f"{e['same_position_tokens']}/{e['tokens']} tokens")
        for name, e in logit_check.items():
            print(f"first-step logits {name} vs transformers: max |diff| {e['max_abs_diff']:.3g}, mean "
                  f"{e['mean_abs_diff']:.3g} (logit std {e['logit_std']:.3g}), same argmax {e['same_argmax']}/{e['n_sequences']}")
        print(f"forced-length greedy runs, ct2 fp32 == transformers: {forced_greedy_equal}")
        print(f"hf outputs: {eos_stops} stopped by </s>, {distinct} distinct tokens")
        print(f"wall {wall:.1f}s; loadavg start {load_start} end {os.getloadavg()}; wrote {args.out}")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
