"""Why the toy profile translates its Cambrian one language per row: the measurements behind the README's account.

    python bench/toy_multilingual_mc.py            # after `make demo`; ~7 min on 2 cores
    python bench/toy_multilingual_mc.py --quick    # smoke run: ~1 min

In one process, on the demo's toy models (`lake/toy/models/`, stage 1 in `lake/toy/training/stage1`):

1. the toy EVA's frozen features, linear probe per scene attribute (is the image readable at all?);
2. the toy Llama text-only, the scene told in words, on MMMU-style multiple choice per language (can the
   language model answer in that language?);
3. stage 2 trained side by side on the pipeline's caption, LAVAM and PALO shards plus a generated toy Cambrian
   in three forms, each the same number of steps and samples:
   - `ci`: English rows only (Table 2's CI);
   - `ci_m_same`: English and the same rows in ten languages, each an equal share (CI M as the paper
     profile builds it: translation keeps the content);
   - `ci_m_distinct`: English and *different* rows in each language (new content per language: CI M as
     the toy profile builds it, `translation.one_language_per_row`);
   - `ci_wide`: as many different rows as `ci_m_distinct`, all in English (is it the content or the language?);
   then scored on generated MMMU-style questions with images (the official prompt and parser).

The Cambrian rows are generated with the lexicon in each language (an exact translation), so the comparison
is about the training data, not the toy translator. Results go to `bench/results/toy_multilingual_mc.json`
(`--quick`: `toy_multilingual_mc_quick.json`).
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.config import REPO_ROOT, load_overlay, load_profile  # noqa: E402
from pipeline.evaluate.prompts import build_prompt  # noqa: E402
from pipeline.evaluate.scoring import parse_multi_choice  # noqa: E402
from pipeline.lake import Lake  # noqa: E402
from pipeline.model.minigpt import build_model, load_image  # noqa: E402
from pipeline.model.weights import load_trainable  # noqa: E402
from pipeline.toy import lexicon as lx  # noqa: E402
from pipeline.toy.scenes import jpeg_bytes, make_scenes  # noqa: E402
from pipeline.toy.world import conversation, multiple_choice, say  # noqa: E402
from pipeline.training.run import model_settings, stage_datasets, stage_dir  # noqa: E402

ATTRS = ("colour", "shape", "position", "size")
EVAL_LANGS = ("eng_Latn", "fra_Latn", "zho_Hans", "hin_Deva", "arb_Arab")


def questions(lang: str, scenes, with_scene_text: bool = False) -> list[tuple[str, list[str], str]]:
    """(prompt, options, gold letter) per scene, in the official MMMU prompt; attributes in turn."""
    rng = random.Random(f"q:{lang}")
    out = []
    for i, s in enumerate(scenes):
        q, opts, k = multiple_choice(s, ATTRS[i % 4], rng, lang)
        prompt = build_prompt("<image 1>\n" + q, opts)
        if with_scene_text:
            prompt = say("caption", "eng_Latn", s) + "\n" + prompt
        out.append((prompt, opts, "ABCD"[k]))
    return out


def accuracy(responses: list[str], qs) -> float:
    ok = 0
    for j, (r, (_, opts, gold)) in enumerate(zip(responses, qs)):
        letters = list("ABCD"[:len(opts)])
        ok += parse_multi_choice(r, letters, dict(zip(letters, opts)), random.Random(j)) == gold
    return round(ok / len(qs), 3)


def probe_vision(settings, n: int) -> dict[str, float]:
    from pipeline.model.vision import build_vision

    vision = build_vision(settings.vision).eval()
    scenes = make_scenes(777, n)
    with torch.no_grad():
        feats = vision(torch.stack([load_image(jpeg_bytes(s), settings.vision.image_size) for s in scenes]))
    x = feats.reshape(n, -1)
    cut = 2 * n // 3
    x = (x - x[:cut].mean(0)) / (x[:cut].std(0) + 1e-5)
    out = {}
    for attr in ATTRS:
        values = sorted({getattr(s, attr) for s in scenes})
        y = torch.tensor([values.index(getattr(s, attr)) for s in scenes])
        torch.manual_seed(0)
        lin = torch.nn.Linear(x.shape[1], len(values))
        opt = torch.optim.Adam(lin.parameters(), 1e-2, weight_decay=1e-3)
        for _ in range(300):
            loss = torch.nn.functional.cross_entropy(lin(x[:cut]), y[:cut])
            opt.zero_grad(); loss.backward(); opt.step()
        out[attr] = round(float((lin(x[cut:]).argmax(1) == y[cut:]).float().mean()), 3)
    return out


@torch.no_grad()
def text_only(llm_dir: str, n: int) -> dict[str, float]:
    from transformers import AutoTokenizer, LlamaForCausalLM

    from pipeline.model.chat import encode

    tok = AutoTokenizer.from_pretrained(llm_dir)
    model = LlamaForCausalLM.from_pretrained(llm_dir).eval()
    pad, eot = tok.convert_tokens_to_ids("<|reserved_special_token_0|>"), tok.convert_tokens_to_ids("<|eot_id|>")
    scenes = make_scenes(999, n)
    out = {}
    for lang in EVAL_LANGS:
        qs = questions(lang, scenes, with_scene_text=True)
        ids = [encode(tok, [{"from": "human", "value": p}], "", 0, False, 10 ** 9, for_generation=True).input_ids
               for p, _, _ in qs]
        width = max(map(len, ids))
        batch = torch.tensor([[pad] * (width - len(i)) + i for i in ids])
        mask = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in ids])
        gen = model.generate(input_ids=batch, attention_mask=mask, max_new_tokens=8, do_sample=False,
                             eos_token_id=eot, pad_token_id=pad)
        out[lang] = accuracy([tok.decode(g[width:], skip_special_tokens=True) for g in gen], qs)
    return out


def cambrian_rows(lang: str, n: int, namespace: str) -> list[dict]:
    """n image rows like the toy Cambrian's: half multiple choice, half question-answer turns."""
    rng = random.Random(f"cambrian:{namespace}")
    rows = []
    for i in range(n):
        s = make_scenes(rng.randrange(1 << 30), 1)[0]
        if rng.random() < 0.5:
            q, opts, k = multiple_choice(s, rng.choice(ATTRS), rng, lang)
            lines = "\n".join(f"({'ABCD'[j]}) {o}" for j, o in enumerate(opts))
            turns = [{"from": "human", "value": f"<image>\n{q}\n{lines}"},
                     {"from": "gpt", "value": f"({'ABCD'[k]}) {opts[k]}"}]
        else:
            turns = conversation(s, lang, rng)
        rows.append({"id": f"{namespace}-{lang}-{i}", "dataset": "cambrian", "source": "bench", "lang": lang,
                     "conversations": turns, "image": jpeg_bytes(s), "caption": None})
    return rows


def train_and_score(form: str, base, lake: Lake, args, scenes, images) -> dict:
    from pipeline.training.recipe import train_stage

    row1 = load_overlay(REPO_ROOT / "configs/ablations/table2_row1_no_cambrian.yaml", base)
    datasets, _ = stage_datasets(row1, lake, 2)
    weights = dict(row1.stages["stage2"].datasets)
    langs = list(lx.LANGS)
    english = cambrian_rows("eng_Latn", args.rows, "en" if form != "ci_m_same" else "same")
    if form == "ci":
        datasets["ci"], weights["ci"] = english, 100.0
    elif form == "ci_wide":  # as many different rows as ci_m_distinct, all in English
        datasets["ci"], weights["ci"] = english + [r for k in range(10) for r in
                                                   cambrian_rows("eng_Latn", args.rows, f"wide{k}")], 100.0
    else:
        others = [r for lang in langs[1:]
                  for r in cambrian_rows(lang, args.rows, "same" if form == "ci_m_same" else lang)]
        random.Random(0).shuffle(others)
        datasets["ci"], weights["ci"] = english, 100 / 11
        datasets["ci_m"], weights["ci_m"] = others, 1000 / 11
    settings = model_settings(base, lake)
    stages = dict(settings.stages)
    stages[2] = stages[2].model_copy(update={"mixture": weights, "steps": args.steps, "lr": args.lr,
                                             "seed": args.seed, "save_every": args.steps})
    settings = settings.model_copy(update={"stages": stages})
    out = Path(lake.path("bench", "toy_multilingual_mc", form).path)
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    result = train_stage(settings, 2, datasets, out, progress=False,
                         init_weights=stage_dir(lake, 1) / "final" / "trainable.safetensors")
    seconds = time.perf_counter() - started
    model = build_model(settings)
    load_trainable(model, out / "final" / "trainable.safetensors")
    model.eval()
    acc = {}
    for lang in EVAL_LANGS:
        qs = questions(lang, scenes)
        responses = []
        for i in range(0, len(qs), 32):
            responses += model.generate([[{"from": "human", "value": p}] for p, _, _ in qs[i:i + 32]],
                                        images[i:i + 32], max_new_tokens=8)
        acc[lang] = accuracy(responses, qs)
    multi = round(statistics.fmean(v for k, v in acc.items() if k != "eng_Latn"), 3)
    print(f"{form:14s} English {acc['eng_Latn']:.3f}  other four {multi:.3f}  loss "
          f"{result.stats.counters.get('loss_first', 0):.2f} -> {result.stats.counters.get('loss_last', 0):.2f}"
          f"  ({seconds:.0f} s)", flush=True)
    shutil.rmtree(out, ignore_errors=True)
    return {"by_language": acc, "english": acc["eng_Latn"], "other_languages": multi, "seconds": round(seconds, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 120 rows, 100 steps, 40 questions")
    ap.add_argument("--rows", type=int, default=480, help="Cambrian image rows per language")
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--lr", type=float, default=8e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--questions", type=int, default=160)
    args = ap.parse_args(argv)
    if args.quick:
        args.rows, args.steps, args.questions = 120, 100, 40
    torch.manual_seed(0)
    base = load_profile(REPO_ROOT / "configs" / "toy.yaml")
    lake = Lake.at(base.lake_root)
    settings = model_settings(base, lake)
    torch.set_num_threads(settings.threads or 1)
    if not (stage_dir(lake, 1) / "final" / "trainable.safetensors").is_file():
        print("no stage 1 in the lake: run `make demo` first", file=sys.stderr)
        return 1
    report: dict = {"settings": {k: getattr(args, k) for k in ("rows", "steps", "lr", "seed", "questions")}}
    report["vision_probe"] = probe_vision(settings, 900 if not args.quick else 300)
    print("EVA linear probe (held-out accuracy):", report["vision_probe"], flush=True)
    report["text_only"] = text_only(settings.llm, args.questions // 2)
    print("toy Llama, scene in words:", report["text_only"], flush=True)
    scenes = make_scenes(4321, args.questions)
    images = [jpeg_bytes(s) for s in scenes]
    report["stage2"] = {form: train_and_score(form, base, lake, args, scenes, images)
                        for form in ("ci", "ci_wide", "ci_m_same", "ci_m_distinct")}
    out = REPO / "bench" / "results" / f"toy_multilingual_mc{'_quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
