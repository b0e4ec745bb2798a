"""NLLB translation on a GPU: CTranslate2 against transformers ``generate``, and the project's production path.

One process, nothing downloaded. Every part is wrapped: a part that fails is recorded in the JSON as
``{"error": ..., "traceback": ...}`` and the other parts still run. The JSON is rewritten after every part,
so a killed run keeps what it measured.

Part 0, environment
    torch / CUDA / GPU, ctranslate2 version, ``ctranslate2.get_cuda_device_count()`` (also printed first
    thing), ``get_supported_compute_types("cuda")``, whether ``libcublas.so.12`` can be loaded.

Part A, engines on random NLLB-shaped models (the method of ``bench/ct2_vs_transformers.py``)
    A real ``NllbTokenizer`` is trained from SentencePiece on generated text (7800 pieces + the 202
    language codes + <mask>), then two ``M2M100ForConditionalGeneration`` shapes are built on the GPU
    with the CPU benchmark's seeded init (matrices scaled by sqrt(512 / d_model), so every shape has the
    per-layer statistics of the 512-wide one):

    - ``bench``: d_model 512, 6+6 layers, 8 heads, FFN 2048, vocabulary = the tokenizer's (8003);
    - ``nllb-1.3B-shape``: d_model 1024, 24+24 layers, 16 heads, FFN 8192. The vocabulary is padded to
      256206 entries, NLLB-200's real size, so the output projection costs what it costs in NLLB-1.3B
      (the extra entries are ``madeupwordN`` tokens, which CTranslate2's converter adds by itself when
      the model's vocab_size exceeds the tokenizer's). Sources only use SentencePiece pieces.

    Each model is saved as safetensors and converted once with ``TransformersConverter`` (copying the
    tokenizer files, as ``pipeline.translation.nllb.convert_to_ctranslate2`` does): float32 for ``bench``
    (needed by the float32 equality check), float16 for the big shape. CTranslate2 converts to the
    compute type (int8_float16, float16) when it loads the model.

    Inputs: 256 fixed sources ``[eng_Latn, 20-40 random piece ids, </s>]`` sorted by length (same batches,
    same padding for both engines). Every output is forced to exactly 24 new tokens after the
    ``fra_Latn`` token: transformers ``forced_bos_token_id`` with ``min_new_tokens = max_new_tokens = 25``,
    CTranslate2 ``target_prefix=[["fra_Latn"]]`` with ``min_decoding_length = max_decoding_length = 25``.
    Engines: transformers fp16 (``model.half().cuda()``), CTranslate2 int8_float16 and float16; greedy
    and beam 4; batch sizes 32 and 128 (examples). Per cell: one warm-up batch per engine, then 3 timed
    repetitions interleaved across engines, ``torch.cuda.synchronize()`` around every timed call.
    Reported: generated tokens/s (best and median) and the CTranslate2 / transformers ratio.

    Equality (``bench`` shape): CTranslate2 float32 on the GPU against transformers float32 on the GPU
    (TF32 disabled), greedy, natural stopping, at most 24 new tokens, 32 sources: identical sequences,
    plus the logits at the first free step. The forced-length greedy outputs of every engine are also
    compared with transformers'.

Part B, the project's production path on the trained toy NLLB (real weights, real text)
    ``--toy-model DIR`` is a converted CTranslate2 folder (``lake/toy/models/nllb/ct2``); its held-out
    sentences come from ``toy_nllb.json`` in the HF folder beside it (``--toy-hf``, default DIR/../hf).
    Settings: cuda int8_float16, cuda float16, cpu int8 (intra_threads = the machine's cores,
    inter_threads 1).

    - Quality: the held-out English sentences into the 10 target languages, all in one
      ``Translator.translate`` call (mixed targets, batch_tokens 2048 for every setting): chrF per
      language (sacrebleu), segments/s, outputs identical to cpu int8. Also
      ``pipeline.translation.nllb.evaluate_chrf`` (both directions, through the same ``Translator``), as
      the toy model's own evaluation does on CPU.
    - Stream: the full toy parallel corpus x 10 languages (6540 segments), mixed targets in one call,
      with ``Translator`` on cuda int8_float16 (batch_tokens 8192 as in configs/paper.yaml, and 2048)
      and on cpu int8 (2048, as in configs/toy.yaml): segments/s.

Run (GPU machine; about 3 minutes on an H100 by estimate, guarded by --budget-s)::

    python bench/gpu_translation.py                    # writes bench/results/gpu_translation.json
    python bench/gpu_translation.py --quick --device cpu   # smoke test without a GPU (~30 s on 2 cores)

ctranslate2 4.8.5 wheels are built against CUDA 12 and dlopen ``libcublas.so.12`` at the first GPU
GEMM. A machine with only CUDA 13 (torch cu130) has ``libcublas.so.13`` only; make it findable first,
for example::

    d=$(python -c "import glob, site; print(glob.glob(site.getsitepackages()[0] + '/nvidia/cu13/lib')[0])")
    mkdir -p /tmp/cublas12 && ln -sf "$d/libcublas.so.13" /tmp/cublas12/libcublas.so.12 \
        && ln -sf "$d/libcublasLt.so.13" /tmp/cublas12/libcublasLt.so.12
    LD_LIBRARY_PATH=/tmp/cublas12:$d:$LD_LIBRARY_PATH python bench/gpu_translation.py

Part 0 records whether ``libcublas.so.12`` loads and where ``libcublas.so*`` files are. Needs torch,
transformers, sentencepiece, ctranslate2, safetensors, numpy, sacrebleu; no database, no dagster.
"""

from __future__ import annotations

import argparse
import copy
import datetime as _dt
import gc
import glob
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import ctranslate2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from ctranslate2.converters import TransformersConverter  # noqa: E402

from bench import ct2_vs_transformers as cpu_bench  # noqa: E402  (tokenizer, model init, sources)

DEFAULT_OUT = HERE / "results" / "gpu_translation.json"
DEFAULT_TOY = ROOT / "lake" / "toy" / "models" / "nllb" / "ct2"
SRC_LANG, TGT_LANG = cpu_bench.SRC_LANG, cpu_bench.TGT_LANG
PAD_ID, EOS_ID = cpu_bench.PAD_ID, cpu_bench.EOS_ID
NLLB_VOCAB = 256206  # facebook/nllb-200-* vocab_size
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "sentencepiece.bpe.model", "special_tokens_map.json")

# name=d_model,layers(encoder and decoder),heads,ffn,vocab (vocab 0: the tokenizer's size)
DEFAULT_SHAPES = ["bench=512,6,8,2048,0", f"nllb-1.3B-shape=1024,24,16,8192,{NLLB_VOCAB}"]
QUICK_SHAPES = ["bench=128,2,4,512,0", "nllb-1.3B-shape=256,4,4,1024,32000"]


def log(msg: str) -> None:
    print(msg, flush=True)


def guarded(name: str, fn, *a, **kw) -> dict:
    """Run one part; an exception becomes {"error", "traceback"} so the other parts still run."""
    t0 = time.perf_counter()
    try:
        out = fn(*a, **kw)
    except Exception as exc:  # recorded, not raised: the other parts must run
        tb = traceback.format_exc()
        log(f"[{name}] FAILED: {exc!r}\n{tb}")
        out = {"error": f"{type(exc).__name__}: {exc}", "traceback": tb}
    out["part_wall_s"] = round(time.perf_counter() - t0, 1)
    return out


def cuda_sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def ct2_compute_types(device: str) -> set[str]:
    try:
        return set(ctranslate2.get_supported_compute_types(device))
    except Exception:  # no CUDA device / driver: nothing is supported
        return set()


# --------------------------------------------------------------------------- part 0: environment


def part_env(args) -> dict:
    info: dict = dict(
        python=platform.python_version(), platform=platform.platform(), os_cpu_count=os.cpu_count(),
        affinity_cpus=len(os.sched_getaffinity(0)),
        versions=dict(torch=torch.__version__, transformers=transformers.__version__,
                      ctranslate2=ctranslate2.__version__, numpy=np.__version__),
        torch_cuda_version=torch.version.cuda, torch_cuda_available=torch.cuda.is_available(),
    )
    for mod in ("sentencepiece", "sacrebleu", "safetensors", "tokenizers"):
        try:
            info["versions"][mod] = __import__(mod).__version__
        except Exception as exc:
            info["versions"][mod] = f"unavailable: {exc}"
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info["gpu"] = dict(name=p.name, capability=f"{p.major}.{p.minor}", total_memory_gib=round(p.total_memory / 2**30, 1),
                           count=torch.cuda.device_count(), cudnn=torch.backends.cudnn.version())
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
        info["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    except Exception as exc:
        info["nvidia_smi"] = f"unavailable: {exc}"
    info["ct2_cuda_device_count"] = ctranslate2.get_cuda_device_count()
    for dev in ("cuda", "cpu"):
        try:
            info[f"ct2_compute_types_{dev}"] = sorted(ctranslate2.get_supported_compute_types(dev))
        except Exception as exc:
            info[f"ct2_compute_types_{dev}"] = f"error: {exc}"
    # CTranslate2 4.8.5 dlopens libcublas.so.12 (see the module docstring); probe it in a child process
    probe = {}
    # (by name, in a fresh process, as CTranslate2's dlopen sees it; torch loads its own copy by path)
    for lib in ("libcublas.so.12", "libcublasLt.so.12", "libcublas.so.13"):
        r = subprocess.run([sys.executable, "-c", f"import ctypes; ctypes.CDLL({lib!r})"],
                           capture_output=True, text=True, timeout=60)
        probe[lib] = "loads" if r.returncode == 0 else (r.stderr.strip().splitlines() or ["failed"])[-1]
    info["dlopen_probe"] = probe
    found = set()
    for base in {p for p in sys.path if "site-packages" in p} | {"/usr/local/cuda/lib64", "/usr/lib/x86_64-linux-gnu"}:
        for pattern in ("libcublas.so*", "nvidia/*/lib/libcublas.so*", "nvidia/*/*/lib/libcublas.so*"):
            found.update(glob.glob(os.path.join(base, pattern)))
    info["libcublas_files"] = sorted(found)[:20]
    so13 = [f for f in info["libcublas_files"] if f.endswith("libcublas.so.13")]
    if probe["libcublas.so.12"] != "loads" and so13:
        d = os.path.dirname(so13[0])
        info["suggested_fix"] = (f"mkdir -p /tmp/cublas12 && ln -sf {d}/libcublas.so.13 /tmp/cublas12/libcublas.so.12 && "
                                 f"ln -sf {d}/libcublasLt.so.13 /tmp/cublas12/libcublasLt.so.12 && "
                                 f"export LD_LIBRARY_PATH=/tmp/cublas12:{d}:$LD_LIBRARY_PATH")
        log(f"[env] libcublas.so.12 does not load; CTranslate2 on cuda will fail. Try: {info['suggested_fix']}")
    info["ld_library_path"] = os.environ.get("LD_LIBRARY_PATH", "")
    info["env"] = {k: v for k, v in os.environ.items()
                   if k.startswith(("CT2_", "CUDA_", "OMP_", "MKL_", "NVIDIA_", "PYTORCH_", "TORCH_"))}
    log(f"[env] torch {torch.__version__} (CUDA {torch.version.cuda}), GPU {info.get('gpu', {}).get('name', 'none')}, "
        f"ct2 {ctranslate2.__version__}: cuda devices {info['ct2_cuda_device_count']}, "
        f"compute types {info['ct2_compute_types_cuda']}; dlopen {probe}")
    return info


# --------------------------------------------------------------------------- part A: engines


def parse_shape(spec: str) -> tuple[str, dict]:
    name, _, dims = spec.partition("=")
    d, layers, heads, ffn, vocab = (int(x) for x in dims.split(","))
    return name, dict(d_model=d, layers=layers, heads=heads, ffn=ffn, vocab=vocab)


def HFEngine(model, tgt_id: int, device: str):
    """The CPU benchmark's transformers engine (same generate call) on `device`."""
    return cpu_bench.HFEngine(model, tgt_id, None, device=device)


def CT2Engine(path: Path, device: str, compute_type: str, vocab: list[str], cpu_threads: int):
    """The CPU benchmark's engine (same translate_batch call) on `device`."""
    intra = cpu_threads if device == "cpu" else 0
    return cpu_bench.CT2Engine(path, compute_type, intra, 1, vocab, device=device)


def timed(engine, device: str, *a):
    cuda_sync(device)
    t0 = time.perf_counter()
    out = engine.run(*a)
    cuda_sync(device)
    return out, time.perf_counter() - t0


def build_tokenizer(work: Path, args) -> tuple[Path, object]:
    tok_dir = work / "tokenizer"
    tok_dir.mkdir(parents=True)
    tok = cpu_bench.build_tokenizer(tok_dir, args.spm_vocab, args.seed)
    return tok_dir, tok


def build_shape(name: str, shape: dict, tok_dir: Path, tok, work: Path, args, save_fp32: bool) -> dict:
    """Model on the device (CPU benchmark's init), saved as safetensors, converted once to CTranslate2."""
    device = args.device
    hf_dir = work / name / "hf"
    shutil.copytree(tok_dir, hf_dir)
    vocab_size = max(len(tok), shape["vocab"])
    t0 = time.perf_counter()
    try:  # built directly on the device: a 1.3B-parameter init on the CPU would take a while
        with torch.device(device):
            model = cpu_bench.build_model(vocab_size, SimpleNamespace(**shape), args.seed)
    except Exception as exc:
        log(f"[A:{name}] building on {device} failed ({exc!r}); building on the CPU and moving it")
        model = cpu_bench.build_model(vocab_size, SimpleNamespace(**shape), args.seed).to(device)
    scale = math.sqrt(512 / shape["d_model"])
    if scale != 1.0:  # keep the 512-wide model's per-layer statistics (and stay far from fp16 overflow)
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if p.dim() == 2 and "shared" not in pname and "embed_tokens" not in pname:
                    p.mul_(scale)
    cuda_sync(device)
    t_build = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.parameters())

    t0 = time.perf_counter()
    save_dtype = torch.float32 if (save_fp32 or device == "cpu") else torch.float16
    if save_dtype == torch.float16:
        model = model.half()  # in place; the fp16 model is also the transformers timing model
    model.save_pretrained(str(hf_dir), safe_serialization=True)
    t_save = time.perf_counter() - t0

    # the project's conversion (pipeline.translation.nllb.convert_to_ctranslate2): tokenizer files copied along
    t0 = time.perf_counter()
    ct2_dir = work / name / "ct2"
    quant = "float32" if save_dtype == torch.float32 else "float16"
    copy_files = [f for f in TOKENIZER_FILES if (hf_dir / f).is_file()]
    TransformersConverter(str(hf_dir), copy_files=copy_files).convert(
        str(ct2_dir), quantization=None if quant == "float32" else quant, force=True)
    t_convert = time.perf_counter() - t0

    vocab = json.loads((ct2_dir / "shared_vocabulary.json").read_text())
    # CTranslate2 works on token strings: its index must be the transformers id
    assert len(vocab) == model.config.vocab_size, (len(vocab), model.config.vocab_size)
    assert vocab[: len(tok)] == tok.convert_ids_to_tokens(list(range(len(tok)))), "CT2 vocab != HF ids"
    padded = vocab[len(tok):]
    assert all(t.startswith("madeupword") for t in padded), padded[:5]
    log(f"[A:{name}] {n_params / 1e6:.0f}M params, vocab {len(vocab)} ({len(tok)} tokenizer + {len(padded)} "
        f"madeupword), build {t_build:.1f}s, save {t_save:.1f}s, convert ({quant}) {t_convert:.1f}s")
    return dict(model=model, hf_dir=hf_dir, ct2_dir=ct2_dir, vocab=vocab, n_params=n_params,
                info=dict(n_params=n_params, vocab_size=len(vocab), tokenizer_size=len(tok),
                          madeupword_entries=len(padded), saved_dtype=str(save_dtype).replace("torch.", ""),
                          converted_to=quant, build_s=round(t_build, 2), save_s=round(t_save, 2),
                          convert_s=round(t_convert, 2),
                          model_bin_mb=round((ct2_dir / "model.bin").stat().st_size / 2**20, 1)))


def time_cell(engines: dict, srcs, bs: int, beam: int, L: int, args, deadline: float) -> dict:
    """One (mode, batch size) cell: warm-up batch per engine, then interleaved repetitions."""
    dev = args.device
    warm = {}
    for name, eng in engines.items():
        warm[name] = timed(eng, dev, srcs[:bs], bs, beam, L, True)[1]
    # repetitions that fit before the deadline (estimated from the warm-up batch)
    n_batches = math.ceil(len(srcs) / bs)
    est_rep = sum(warm.values()) * n_batches
    left = deadline - time.perf_counter()
    reps = min(args.reps, int(left // est_rep)) if est_rep > 0 else args.reps
    if reps < 1:
        return dict(skipped=f"time budget: ~{est_rep:.1f}s per repetition, {left:.1f}s left",
                    warmup_s={n: round(w, 3) for n, w in warm.items()})
    times = {n: [] for n in engines}
    outputs = {}
    for _ in range(reps):
        for name, eng in engines.items():
            out, wall = timed(eng, dev, srcs, bs, beam, L, True)
            times[name].append(wall)
            outputs[name] = out
    hf_name = next(n for n in engines if n.startswith("transformers"))
    ref = outputs[hf_name]
    assert all(len(o) == L for o in ref), "transformers did not produce exactly L tokens"
    for name, out in outputs.items():
        assert [len(o) for o in out] == [len(o) for o in ref], f"{name}: output lengths differ"
    n_tok = sum(map(len, ref))
    hf_best, hf_med = min(times[hf_name]), statistics.median(times[hf_name])
    rows = {}
    for name in engines:
        best, med = min(times[name]), statistics.median(times[name])
        rows[name] = dict(times_s=[round(t, 4) for t in times[name]], best_s=round(best, 4), median_s=round(med, 4),
                          tokens_per_s_best=round(n_tok / best, 1), tokens_per_s_median=round(n_tok / med, 1),
                          x_vs_transformers_best=round(hf_best / best, 2),
                          x_vs_transformers_median=round(hf_med / med, 2),
                          warmup_batch_s=round(warm[name], 4))
        if name != hf_name and beam == 1:
            same = sum(a == b for a, b in zip(outputs[name], ref))
            rows[name]["forced_greedy_identical_to_transformers"] = f"{same}/{len(ref)}"
    return dict(generated_tokens=n_tok, reps=reps, engines=rows)


def first_step_logits(model, engine: CT2Engine, srcs, tgt_id: int, device: str) -> dict:
    """Max |logit difference| between transformers and CTranslate2 at the first free decoding step."""
    ids, mask = cpu_bench.pad_batch(srcs, device)
    with torch.inference_mode():
        ref = model(input_ids=ids, attention_mask=mask,
                    decoder_input_ids=torch.tensor([[EOS_ID, tgt_id]] * len(srcs), device=device)).logits[:, -1]
    ref = ref.float().cpu()
    res = engine.tr.translate_batch([[engine.vocab[i] for i in s] for s in srcs],
                                    target_prefix=[[TGT_LANG]] * len(srcs), beam_size=1,
                                    max_decoding_length=2, return_logits_vocab=True)
    rows = []
    for r in res:
        sv = r.logits[0][1].to_device(ctranslate2.Device.cpu)  # a GPU StorageView has no array interface
        rows.append(torch.from_numpy(np.asarray(sv).copy()).float())
    ct = torch.stack(rows)
    keep = slice(4, None)  # special tokens may be masked by the decoder
    diff = (ct[:, keep] - ref[:, keep]).abs()
    return dict(n_sequences=len(srcs), max_abs_diff=float(diff.max()), mean_abs_diff=float(diff.mean()),
                logit_std=float(ref[:, keep].std()),
                same_argmax=int((ct[:, keep].argmax(-1) == ref[:, keep].argmax(-1)).sum()))


def equality_check(model, built: dict, srcs, tgt_id: int, args) -> dict:
    """CTranslate2 float32 vs transformers float32 on the device: greedy, natural stopping."""
    dev = args.device
    eng = CT2Engine(built["ct2_dir"], dev, "float32", built["vocab"], args.cpu_threads)
    hf = HFEngine(model, tgt_id, dev)
    n, Le = args.eq_n, args.eq_new_tokens
    sub = srcs[:: max(1, len(srcs) // n)][:n]  # spread over the length range
    hf_out = hf.run(sub, n, 1, Le, False)
    ct_out = eng.run(sub, n, 1, Le, False)
    same = sum(a == b for a, b in zip(ct_out, hf_out))
    first_diff = []
    for k, (a, b) in enumerate(zip(ct_out, hf_out)):
        if a != b:
            pos = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            first_diff.append(dict(seq=k, position=pos, ct2=a[pos: pos + 3], transformers=b[pos: pos + 3]))
    res = dict(engines="ct2 float32 vs transformers float32", device=dev,
               torch_allow_tf32=torch.backends.cuda.matmul.allow_tf32, n_sequences=len(sub),
               max_new_tokens=Le, identical_sequences=same,
               same_position_tokens=sum(sum(x == y for x, y in zip(a, b)) for a, b in zip(ct_out, hf_out)),
               tokens=sum(max(len(a), len(b)) for a, b in zip(ct_out, hf_out)),
               stopped_by_eos=sum(len(o) < Le for o in hf_out),
               distinct_tokens=len({t for o in hf_out for t in o}), first_differences=first_diff[:10])
    try:
        res["first_step_logits"] = first_step_logits(model, eng, sub[:16], tgt_id, dev)
    except Exception as exc:
        res["first_step_logits"] = {"error": f"{type(exc).__name__}: {exc}"}
    del eng
    return res


def part_engines(args, work: Path, deadline: float) -> dict:
    dev = args.device
    torch.backends.cuda.matmul.allow_tf32 = False  # the equality check compares real float32
    torch.backends.cudnn.allow_tf32 = False
    out: dict = dict(settings=dict(
        device=dev, n_sources=args.n, source_len=[args.min_len, args.max_len], new_tokens=args.new_tokens,
        reps=args.reps, batch_sizes=args.batch_sizes, beams=args.beams, batch_type="examples",
        src_lang=SRC_LANG, tgt_lang=TGT_LANG,
        timing="one warm-up batch per engine, then reps interleaved across engines; cuda synchronized "
               "around every call; tokens = new tokens after the language token, counted from the outputs",
        note=f"real NLLB-200 has a {NLLB_VOCAB}-entry vocabulary; a shape with vocab {NLLB_VOCAB} pads the "
             f"tokenizer's with madeupword entries (same output-projection cost)"))
    supported = ct2_compute_types(dev)
    cts = [c for c in args.compute_types if c in supported]
    out["compute_types"] = cts
    out["compute_types_skipped"] = {c: f"not supported on {dev} (supported: {sorted(supported)})"
                                    for c in args.compute_types if c not in supported}
    if out["compute_types_skipped"]:
        log(f"[A] skipped compute types: {out['compute_types_skipped']}")

    t0 = time.perf_counter()
    tok_dir, tok = build_tokenizer(work, args)
    out["tokenizer"] = dict(spm_pieces=args.spm_vocab, size=len(tok), train_s=round(time.perf_counter() - t0, 2))
    log(f"[A] tokenizer: {len(tok)} entries in {out['tokenizer']['train_s']}s")

    out["shapes"] = {}
    for spec in args.shape:
        name, shape = parse_shape(spec)
        out["shapes"][name] = res = dict(shape=shape)
        d, L, f = shape["d_model"], shape["layers"], shape["ffn"]
        params = L * (12 * d * d + 4 * d * f) + max(shape["vocab"], len(tok)) * d
        est_build = 5 + 25 * params / 1e9  # build + save + convert + load; guessed, ~40 s for 1.3B on an H100 box
        left = deadline - time.perf_counter()
        if left < est_build + 10:
            res["skipped"] = f"time budget: {left:.0f}s left, building takes ~{est_build:.0f}s"
            log(f"[A:{name}] skipped: {res['skipped']}")
            continue
        try:
            run_shape(name, shape, tok_dir, tok, work, args, deadline, cts, res)
        except Exception as exc:
            tb = traceback.format_exc()
            log(f"[A:{name}] FAILED: {exc!r}\n{tb}")
            res.update(error=f"{type(exc).__name__}: {exc}", traceback=tb)
        finally:
            gc.collect()
            if dev == "cuda":
                torch.cuda.empty_cache()
            if not args.keep:
                shutil.rmtree(work / name, ignore_errors=True)
    return out


def run_shape(name: str, shape: dict, tok_dir: Path, tok, work: Path, args, deadline: float, cts: list[str],
              res: dict) -> None:
    dev = args.device
    with_eq = name in args.eq_shapes
    built = build_shape(name, shape, tok_dir, tok, work, args, save_fp32=with_eq)
    res["model"] = built["info"]
    vocab, model = built["vocab"], built["model"]
    src_id, tgt_id = vocab.index(SRC_LANG), vocab.index(TGT_LANG)
    srcs = cpu_bench.make_sources(args.n, args.min_len, args.max_len, 4, args.spm_vocab, src_id, args.seed + 1)

    if dev == "cuda":  # fp16 timing model (the equality check keeps the float32 one)
        hf_model = copy.deepcopy(model).half() if model.dtype != torch.float16 else model
    else:
        hf_model = model
    hf_label = f"transformers {str(hf_model.dtype).replace('torch.', '')}"
    res["transformers"] = dict(dtype=str(hf_model.dtype), attn_implementation=getattr(hf_model.config, "_attn_implementation", None))
    engines = {hf_label: HFEngine(hf_model, tgt_id, dev)}
    res["ct2_load_and_first_call_s"], res["engine_errors"] = {}, {}
    for ct in cts:
        t0 = time.perf_counter()
        try:
            engines[f"ct2 {ct}"] = CT2Engine(built["ct2_dir"], dev, ct, vocab, args.cpu_threads)
            engines[f"ct2 {ct}"].run(srcs[:2], 2, 1, 2, True)  # first call: CUDA/cuBLAS initialisation
        except Exception as exc:
            engines.pop(f"ct2 {ct}", None)
            res["engine_errors"][ct] = f"{type(exc).__name__}: {exc}"
            log(f"[A:{name}] ct2 {ct} failed: {exc!r}")
            continue
        res["ct2_load_and_first_call_s"][ct] = round(time.perf_counter() - t0, 2)
    if dev == "cuda":
        res["cuda_memory_allocated_gib_torch"] = round(torch.cuda.memory_allocated() / 2**30, 2)
    engines[hf_label].run(srcs[:2], 2, 1, 2, True)

    res["cells"] = {}
    for beam in args.beams:
        mode = "greedy" if beam == 1 else f"beam{beam}"
        for bs in args.batch_sizes:
            key = f"{mode} bs={bs}"
            t0 = time.perf_counter()
            cell = time_cell(engines, srcs, bs, beam, args.new_tokens, args, deadline)
            cell["cell_wall_s"] = round(time.perf_counter() - t0, 1)
            res["cells"][key] = cell
            if "skipped" in cell:
                log(f"[A:{name}] {key}: skipped ({cell['skipped']})")
                continue
            for en, r in cell["engines"].items():
                log(f"[A:{name}] {key:14s} {en:26s} median {r['median_s']:7.3f}s {r['tokens_per_s_median']:9.1f} tok/s"
                    f"  x{r['x_vs_transformers_median']:5.2f}  (times {', '.join(f'{t:.3f}' for t in r['times_s'])})")

    if with_eq:
        if time.perf_counter() < deadline:
            res["equality"] = equality_check(model, built, srcs, tgt_id, args)
            e = res["equality"]
            log(f"[A:{name}] equality ct2 float32 vs transformers float32 on {dev}: {e['identical_sequences']}/"
                f"{e['n_sequences']} identical, {e['same_position_tokens']}/{e['tokens']} tokens; first-step "
                f"logits {e['first_step_logits']}")
        else:
            res["equality"] = {"skipped": "time budget"}
    del engines, hf_model, model, built


# --------------------------------------------------------------------------- part B: production path


def part_toy(args) -> dict:
    from sacrebleu.metrics import CHRF

    from pipeline.languages import SOURCE_LANG, TARGET_LANGS
    from pipeline.toy import lexicon
    from pipeline.toy import nllb as toy_nllb
    from pipeline.translation import nllb
    from pipeline.translation.translator import Translator

    ct2_dir = Path(args.toy_model)
    hf_dir = Path(args.toy_hf) if args.toy_hf else ct2_dir.parent / "hf"
    langs = list(args.langs or TARGET_LANGS)
    rows = toy_nllb.heldout_rows(hf_dir)
    info = json.loads((hf_dir / toy_nllb.TOY_INFO_FILE).read_text(encoding="utf-8"))
    out: dict = dict(model=str(ct2_dir), fingerprint=nllb.model_fingerprint(ct2_dir), heldout_rows=len(rows),
                     languages=langs, toy_config=info.get("config"),
                     recorded_chrf_at_training=info.get("chrf"))

    cuda_ok = args.device == "cuda" and ctranslate2.get_cuda_device_count() > 0
    if args.device == "cuda":
        wanted = [("cuda", "int8_float16"), ("cuda", "float16"), ("cpu", "int8")]
    else:
        wanted = [("cpu", "int8"), ("cpu", "float32")]
    translators, skipped = {}, {}
    for dev, ct in wanted:
        label = f"{dev} {ct}"
        if dev == "cuda" and not cuda_ok:
            skipped[label] = "no CUDA device visible to CTranslate2"
        elif ct not in ct2_compute_types(dev):
            skipped[label] = f"compute type not supported on {dev}"
        else:
            try:
                t0 = time.perf_counter()
                tr = Translator(str(ct2_dir), device=dev, compute_type=ct, inter_threads=1,
                                intra_threads=args.cpu_threads if dev == "cpu" else args.cuda_intra_threads,
                                batch_tokens=args.quality_batch_tokens)
                tr.translate([(rows[0][SOURCE_LANG], langs[0])] * 8)  # warm-up (CUDA/cuBLAS initialisation)
                translators[label] = tr
                log(f"[B] {label}: loaded + warm-up {time.perf_counter() - t0:.2f}s")
            except Exception as exc:
                skipped[label] = f"{type(exc).__name__}: {exc}"
                log(f"[B] {label} failed: {exc!r}")
    out["settings_skipped"] = skipped
    out["cpu_intra_threads"] = args.cpu_threads
    ref_label = "cpu int8" if "cpu int8" in translators else next(iter(translators), None)

    # ---- quality: held-out sentences into every language, one Translator call with mixed targets
    items = [(r[SOURCE_LANG], lang) for r in rows for lang in langs if r.get(lang)]
    refs = {lang: [r[lang] for r in rows if r.get(lang)] for lang in langs}
    quality, outputs = {}, {}
    for label, tr in translators.items():
        tr.batch_tokens = args.quality_batch_tokens
        retried0 = tr.stats.retried
        t0 = time.perf_counter()
        hyps = tr.translate(items)
        secs = time.perf_counter() - t0
        retried = tr.stats.retried - retried0  # before evaluate_chrf, which goes through the same Translator
        outputs[label] = hyps
        by_lang = {lang: [h for (_, l2), h in zip(items, hyps) if l2 == lang] for lang in langs}
        chrf = {lang: round(CHRF().corpus_score(by_lang[lang], [refs[lang]]).score, 2) for lang in langs}
        t0 = time.perf_counter()
        reference = nllb.evaluate_chrf(tr, rows, langs)
        ref_secs = time.perf_counter() - t0
        quality[label] = dict(segments=len(items), seconds=round(secs, 3), segments_per_s=round(len(items) / secs, 1),
                              retried=retried, chrf_eng_to_x=chrf,
                              chrf_min=min(chrf.values()), chrf_mean=round(statistics.mean(chrf.values()), 2),
                              evaluate_chrf=reference, evaluate_chrf_s=round(ref_secs, 2))
        log(f"[B] quality {label:18s} {len(items) / secs:8.1f} seg/s  chrF eng->X min {min(chrf.values()):.1f} "
            f"mean {statistics.mean(chrf.values()):.1f}")
    if ref_label:
        for label in quality:
            same = sum(a == b for a, b in zip(outputs[label], outputs[ref_label]))
            quality[label][f"identical_to_{ref_label.replace(' ', '_')}"] = f"{same}/{len(items)}"
            diffs = [dict(src=items[k][0], lang=items[k][1], this=outputs[label][k], ref=outputs[ref_label][k])
                     for k in range(len(items)) if outputs[label][k] != outputs[ref_label][k]]
            quality[label]["example_differences"] = diffs[:5]
    out["quality"] = quality
    out["quality_settings"] = dict(batch_tokens=args.quality_batch_tokens, beam_size=1,
                                   path="pipeline.translation.translator.Translator.translate (guards on)")

    # ---- stream: the whole toy parallel corpus x languages, mixed targets in one call
    corpus = lexicon.parallel_corpus()
    if args.stream_rows:
        corpus = corpus[: args.stream_rows]
    stream_items = [(r[SOURCE_LANG], lang) for r in corpus for lang in langs if r.get(lang)]
    plan = []
    for label in translators:
        dev = label.split()[0]
        if label in ("cuda int8_float16", "cpu int8") or (args.device == "cpu" and dev == "cpu"):
            for bt in (args.stream_batch_tokens_cuda if dev == "cuda" else args.stream_batch_tokens_cpu):
                plan.append((label, bt))
    stream, stream_out = {}, {}
    for label, bt in plan:
        tr = translators[label]
        tr.batch_tokens = bt
        retried0 = tr.stats.retried
        times = []
        for _ in range(args.stream_reps):
            t0 = time.perf_counter()
            stream_out[(label, bt)] = tr.translate(stream_items)
            times.append(time.perf_counter() - t0)
        best = min(times)
        stream[f"{label} batch_tokens={bt}"] = dict(
            segments=len(stream_items), times_s=[round(t, 3) for t in times],
            segments_per_s_best=round(len(stream_items) / best, 1),
            segments_per_s_median=round(len(stream_items) / statistics.median(times), 1),
            retried_per_run=(tr.stats.retried - retried0) / args.stream_reps)
        log(f"[B] stream {label} batch_tokens={bt}: {len(stream_items)} segments, best {best:.2f}s = "
            f"{len(stream_items) / best:.1f} seg/s")
    ref_key = next((k for k in stream_out if k[0] == ref_label), None)
    if ref_key:
        for (label, bt), o in stream_out.items():
            same = sum(a == b for a, b in zip(o, stream_out[ref_key]))
            stream[f"{label} batch_tokens={bt}"][f"identical_to_{ref_key[0].replace(' ', '_')}_bt{ref_key[1]}"] = \
                f"{same}/{len(o)}"
    out["stream"] = stream
    out["stream_settings"] = dict(rows=len(corpus), languages=len(langs), reps=args.stream_reps,
                                  order="row by row, every language per row (mixed targets), one translate() call")
    del translators
    gc.collect()
    return out


# --------------------------------------------------------------------------- summary


def print_summary(result: dict) -> None:
    log("\n==== summary ====")
    env = result.get("env", {})
    if "error" not in env:
        log(f"GPU: {env.get('gpu', {}).get('name', 'none')}; ct2 {env.get('versions', {}).get('ctranslate2')} "
            f"cuda devices {env.get('ct2_cuda_device_count')}")
    a = result.get("part_a", {})
    if "error" in a:
        log(f"part A: ERROR {a['error']}")
    for name, s in a.get("shapes", {}).items():
        if "error" in s or "skipped" in s:
            log(f"part A {name}: {s.get('error') or s.get('skipped')}")
            continue
        m = s["model"]
        log(f"\npart A, {name}: {m['n_params'] / 1e6:.0f}M params, vocab {m['vocab_size']}; generated tokens/s "
            f"(median of reps), x = CT2 / transformers")
        cells = s.get("cells", {})
        names = next((list(c["engines"]) for c in cells.values() if "engines" in c), [])
        log("| cell | " + " | ".join(f"{n} | x" if not n.startswith("transformers") else n for n in names) + " |")
        for key, c in cells.items():
            if "engines" not in c:
                log(f"| {key} | skipped: {c.get('skipped')} |")
                continue
            parts = []
            for n in names:
                r = c["engines"][n]
                parts.append(f"{r['tokens_per_s_median']}" if n.startswith("transformers")
                             else f"{r['tokens_per_s_median']} | **{r['x_vs_transformers_median']}**")
            log(f"| {key} | " + " | ".join(parts) + " |")
        if "equality" in s:
            e = s["equality"]
            log(f"equality (float32 both, greedy, natural stop): {e.get('identical_sequences')}/{e.get('n_sequences')} "
                f"identical; first-step logits {e.get('first_step_logits')}")
    b = result.get("part_b", {})
    if "error" in b:
        log(f"\npart B: ERROR {b['error']}")
    elif b:
        q = b.get("quality", {})
        labels = list(q)
        log(f"\npart B, toy NLLB {b.get('model')}: chrF eng->X on {b.get('heldout_rows')} held-out rows "
            f"(skipped: {b.get('settings_skipped')})")
        log("| language | " + " | ".join(labels) + " |")
        for lang in b.get("languages", []):
            log(f"| {lang} | " + " | ".join(str(q[lb]["chrf_eng_to_x"][lang]) for lb in labels) + " |")
        log("| segments/s | " + " | ".join(str(q[lb]["segments_per_s"]) for lb in labels) + " |")
        for lb in labels:
            ident = [v for k, v in q[lb].items() if k.startswith("identical_to")]
            log(f"{lb}: identical outputs {ident}, retried {q[lb]['retried']}")
        for k, v in b.get("stream", {}).items():
            log(f"stream {k}: {v['segments']} segments, {v['segments_per_s_best']} seg/s (best), "
                f"{ {kk: vv for kk, vv in v.items() if kk.startswith('identical')} }")
    log(f"\nwall {result.get('wall_s')}s; wrote {result.get('out')}")


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None,
                    help="JSON output (default bench/results/gpu_translation.json; --quick: gpu_translation_quick.json)")
    ap.add_argument("--quick", action="store_true", help="tiny shapes and counts (smoke test, e.g. with --device cpu)")
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--parts", nargs="+", default=["env", "A", "B"], choices=["env", "A", "B"])
    ap.add_argument("--budget-s", type=float, default=None,
                    help="time budget counted from after the imports (~15 s); part A skips shapes and cells that would "
                         "not fit before budget - part-b-reserve (default 195, quick 150)")
    ap.add_argument("--part-b-reserve-s", type=float, default=None, help="seconds of the budget kept for part B (default 40)")
    ap.add_argument("--work-dir", type=Path, default=None, help="scratch folder (default: /dev/shm if it has room)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cpu-threads", type=int, default=len(os.sched_getaffinity(0)),
                    help="CTranslate2 intra_threads on cpu and torch threads on cpu (default: all cores)")
    # part A
    ap.add_argument("--shape", action="append", default=None, metavar="NAME=D,LAYERS,HEADS,FFN,VOCAB",
                    help=f"model shape (repeatable; VOCAB 0 = tokenizer size); default {DEFAULT_SHAPES}")
    ap.add_argument("--eq-shapes", nargs="*", default=["bench"], help="shapes that get the float32 equality check")
    ap.add_argument("--spm-vocab", type=int, default=None, help="SentencePiece pieces (default 7800, quick 1000)")
    ap.add_argument("--n", type=int, default=None, help="source sequences (default 256, quick 16)")
    ap.add_argument("--min-len", type=int, default=20)
    ap.add_argument("--max-len", type=int, default=40)
    ap.add_argument("--new-tokens", type=int, default=None, help="forced output length (default 24, quick 8)")
    ap.add_argument("--reps", type=int, default=None, help="timed repetitions (default 3, quick 1)")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=None, help="examples per batch (default 32 128, quick 8)")
    ap.add_argument("--beams", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--compute-types", nargs="+", default=None,
                    help="CTranslate2 compute types (default: int8_float16 float16 on cuda, int8 float32 on cpu)")
    ap.add_argument("--eq-n", type=int, default=None, help="equality-check sequences (default 32, quick 8)")
    ap.add_argument("--eq-new-tokens", type=int, default=None, help="equality-check max new tokens (default 24, quick 8)")
    # part B
    ap.add_argument("--toy-model", type=Path, default=DEFAULT_TOY, help="CTranslate2 folder of the toy NLLB")
    ap.add_argument("--toy-hf", type=Path, default=None, help="its HF folder with toy_nllb.json (default: ../hf)")
    ap.add_argument("--langs", nargs="+", default=None, help="target languages (default: all 10; quick: 3)")
    ap.add_argument("--quality-batch-tokens", type=int, default=2048)
    ap.add_argument("--cuda-intra-threads", type=int, default=4, help="as configs/paper.yaml")
    ap.add_argument("--stream-rows", type=int, default=None, help="parallel-corpus rows (0 = all; quick 60)")
    ap.add_argument("--stream-reps", type=int, default=None, help="default 2, quick 1")
    ap.add_argument("--stream-batch-tokens-cuda", type=int, nargs="+", default=[8192, 2048])
    ap.add_argument("--stream-batch-tokens-cpu", type=int, nargs="+", default=[2048])
    args = ap.parse_args()

    q = args.quick
    args.out = args.out or (DEFAULT_OUT.with_name("gpu_translation_quick.json") if q else DEFAULT_OUT)
    args.shape = args.shape or (QUICK_SHAPES if q else DEFAULT_SHAPES)
    args.spm_vocab = args.spm_vocab or (1000 if q else 7800)
    args.n = args.n or (16 if q else 256)
    args.new_tokens = args.new_tokens or (8 if q else 24)
    args.reps = args.reps or (1 if q else 3)
    args.batch_sizes = args.batch_sizes or ([8] if q else [32, 128])
    args.eq_n = args.eq_n or (8 if q else 32)
    args.eq_new_tokens = args.eq_new_tokens or (8 if q else 24)
    args.compute_types = args.compute_types or (["int8_float16", "float16"] if args.device == "cuda" else ["int8", "float32"])
    args.budget_s = args.budget_s or (150.0 if q else 195.0)
    args.part_b_reserve_s = args.part_b_reserve_s if args.part_b_reserve_s is not None else (30.0 if q else 40.0)
    args.stream_rows = args.stream_rows if args.stream_rows is not None else (60 if q else 0)
    args.stream_reps = args.stream_reps or (1 if q else 2)
    if q and args.langs is None:
        args.langs = ["fra_Latn", "zho_Hans", "hin_Deva"]
    if args.device == "cpu":
        torch.set_num_threads(args.cpu_threads)

    t_start = time.perf_counter()
    # printed first: 0 here means the GPU parts of CTranslate2 cannot run (driver / libcublas, see docstring)
    log(f"ctranslate2 {ctranslate2.__version__}: get_cuda_device_count() = {ctranslate2.get_cuda_device_count()}; "
        f"torch.cuda.is_available() = {torch.cuda.is_available()}")
    if args.device == "cuda" and not torch.cuda.is_available():
        log("WARNING: --device cuda but torch sees no GPU; part A will fail (use --device cpu for a smoke test)")
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()

    if args.work_dir:
        work = args.work_dir
        work.mkdir(parents=True, exist_ok=True)
    else:
        need = 1 if q else 12  # GiB: the big shape's safetensors + model.bin
        shm = Path("/dev/shm")
        use_shm = shm.is_dir() and shutil.disk_usage(shm).free > need * 2**30
        work = Path(tempfile.mkdtemp(prefix="gpubench_", dir=str(shm) if use_shm else None))
    result: dict = dict(
        benchmark="gpu_translation", started=_dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        command="python " + " ".join([str(Path(sys.argv[0]))] + sys.argv[1:]), quick=q,
        args={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, work_dir=str(work),
        out=str(args.out),
    )

    def save() -> None:
        result["wall_s"] = round(time.perf_counter() - t_start, 1)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, default=str, ensure_ascii=False) + "\n", encoding="utf-8")

    try:
        if "env" in args.parts:
            result["env"] = guarded("env", part_env, args)
            save()
        if "A" in args.parts:
            deadline = t_start + args.budget_s - (args.part_b_reserve_s if "B" in args.parts else 0)
            result["part_a"] = guarded("A", part_engines, args, work, deadline)
            save()
        if "B" in args.parts:
            result["part_b"] = guarded("B", part_toy, args)
            save()
    finally:
        if not args.keep and not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    print_summary(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
