"""The toy NLLB (pipeline.toy.nllb, pipeline.toy.nllb_data) and the NLLB code shared by both profiles
(pipeline.translation.nllb: conversion, fingerprint, loading, chrF through the production Translator).

The fast tests train a tiny model for a few steps (it must learn, but quality is not the point); the slow
test trains the default toy model and checks the quality bar (chrF >= 80 eng->X on held-out sentences,
int8, greedy).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

from pipeline.config import ToyNllbSettings
from pipeline.toy import lexicon
from pipeline.toy import nllb as toy
from pipeline.toy import nllb_data
from pipeline.translation import nllb
from pipeline.translation.translator import Translator

TINY = ToyNllbSettings(
    vocab_size=700, d_model=64, encoder_layers=1, decoder_layers=1, attention_heads=2, ffn_dim=128,
    steps=200, warmup_steps=20, batch_size=32, lr=5e-3, heldout_fraction=0.1, threads=1, log_every=50,
    # the slice's own rows only (no bare words, no repeated templates): 200 steps then translate them
    # well enough for the chrF tests to tell a right reference from a wrong one
    bare_words=False, min_template_rows=0,
)


SLICE_LANGS = ("eng_Latn", "fra_Latn", "jpn_Jpan", "hin_Deva", "zho_Hans")


def _slice() -> list[dict[str, str]]:
    """Every 12th toy row in five languages: small enough to learn something in a few seconds."""
    return [{lang: row[lang] for lang in SLICE_LANGS} for row in lexicon.parallel_corpus()[::12]]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny HF model (6 training steps), its int8 and float32 CTranslate2 conversions."""
    root = tmp_path_factory.mktemp("nllb")
    logs: list[str] = []
    stats = toy.train_toy_nllb(_slice(), root / "hf", TINY, log=logs.append)
    int8 = nllb.convert_to_ctranslate2(root / "hf", root / "ct2-int8", "int8")
    fp32 = nllb.convert_to_ctranslate2(root / "hf", root / "ct2-fp32", None)
    return {"root": root, "hf": root / "hf", "int8": int8, "fp32": fp32, "stats": stats, "logs": logs}


def test_training_stats_and_files(tiny):
    stats = tiny["stats"]
    assert stats["steps"] == TINY.steps
    assert stats["n_train_pairs"] > 0 and stats["n_heldout"] >= 1
    # it learned: the last logging window's mean loss is far below the first one's (NaN fails too)
    assert stats["final_loss"] < 0.6 * stats["first_loss"], stats
    assert stats["final_nll"] < 0.6 * stats["first_nll"], stats
    assert any(line.startswith("step 50/") for line in tiny["logs"])
    hf = tiny["hf"]
    for name in ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json",
                 "sentencepiece.bpe.model", toy.TOY_INFO_FILE):
        assert (hf / name).is_file(), name
    assert not [p for p in hf.parent.iterdir() if p.name.startswith(".hf.tmp")]  # no leftovers


def test_heldout_rows_are_never_trained_on(tiny):
    rows = _slice()
    train, held = nllb_data.split_corpus(rows, TINY.heldout_fraction, TINY.seed)
    assert held and len(train) + len(held) == len(rows)
    assert nllb_data.split_corpus(list(reversed(rows)), TINY.heldout_fraction, TINY.seed)[1] == \
        [r for r in reversed(rows) if r in held]  # independent of the rows' order
    trained = {s for p in nllb_data.training_pairs(train) for s in (p[1], p[3])}
    for row in held:
        assert not set(row.values()) & trained
    assert [r["eng_Latn"] for r in toy.heldout_rows(tiny["hf"], rows)] == [r["eng_Latn"] for r in held]


def test_split_keeps_every_template_in_training():
    rows = lexicon.parallel_corpus()
    train, held = nllb_data.split_corpus(rows, 0.08, 0)
    assert len(held) == round(0.08 * len(rows))
    kinds = nllb_data.kind_groups()
    assert {kinds[r["eng_Latn"]] for r in held} <= {kinds[r["eng_Latn"]] for r in train}


def test_small_templates_are_repeated_up_to_the_minimum():
    """A one-row template ("Describe the picture.") is trained as often as a 24-row one; big ones are untouched."""
    train, _ = nllb_data.split_corpus(lexicon.parallel_corpus(), 0.08, 0)
    kinds = nllb_data.kind_groups()
    count = lambda rows: {k: sum(kinds[r["eng_Latn"]] == k for r in rows) for k in set(kinds.values())}
    before, after = count(train), count(nllb_data.balance_templates(train, 24))
    for kind, n in before.items():
        assert after[kind] == max(n, 24) if n else after[kind] == 0
    assert after["describe"] == 24 and after["caption"] == before["caption"]
    assert {r["eng_Latn"] for r in nllb_data.balance_templates(train, 24)} == {r["eng_Latn"] for r in train}
    # the bare attribute words (MMMU's options) are balanced per category: two sizes weigh as much as the colours
    words, category_of = nllb_data.bare_word_rows()
    balanced = nllb_data.balance_templates(words, 24, category_of)
    per_category = {c: sum(category_of[r["eng_Latn"]] == c for r in balanced) for c in set(category_of.values())}
    assert per_category == {c: 24 for c in per_category} and "size" in per_category


def test_tokenizer_nllb_format(tiny):
    tok = nllb.load_tokenizer(tiny["int8"])
    row = _slice()[0]
    for lang in ("hin_Deva", "zho_Hans", "eng_Latn"):
        tok.src_lang = lang
        pieces = tok.convert_ids_to_tokens(tok(row[lang])["input_ids"])
        assert pieces[0] == lang and pieces[-1] == "</s>"
        assert tok.unk_token not in pieces and len(pieces) > 2
    assert tok.convert_tokens_to_ids(["<s>", "<pad>", "</s>", "<unk>"]) == [0, 1, 2, 3]
    for code in lexicon.LANGS:  # the real FLORES-200 codes, each a single token
        assert tok.convert_tokens_to_ids(code) != tok.unk_token_id
    assert len(nllb.FAIRSEQ_LANGUAGE_CODES) == 202


def test_conversion_output(tiny):
    for folder in (tiny["int8"], tiny["fp32"]):
        names = set(os.listdir(folder))
        assert {"model.bin", "config.json", "tokenizer.json", "tokenizer_config.json",
                "sentencepiece.bpe.model"} <= names
        assert not any(n.startswith(".") for n in os.listdir(folder.parent) if "tmp" in n)


def test_evaluate_chrf_shape_and_unknown_language(tiny):
    translator = Translator(str(tiny["int8"]), intra_threads=1)
    held = toy.heldout_rows(tiny["hf"], _slice())
    chrf = nllb.evaluate_chrf(translator, held, ["fra_Latn", "jpn_Jpan"])
    assert set(chrf) == {"eng_to_x", "x_to_eng"}
    assert set(chrf["eng_to_x"]) == set(chrf["x_to_eng"]) == {"fra_Latn", "jpn_Jpan"}
    assert all(0 <= v <= 100 for d in chrf.values() for v in d.values())
    assert translator.stats.segments >= 4 * len(held)  # through the production engine, both directions
    with pytest.raises(ValueError, match="xxx_Latn"):
        nllb.evaluate_chrf(translator, held, ["fra_Latn", "xxx_Latn"])
    with pytest.raises(ValueError, match="eng_Latn"):
        nllb.evaluate_chrf(translator, [{"fra_Latn": "Le cercle est rouge."}], ["fra_Latn"])


def test_chrf_is_scored_against_the_right_references(tiny):
    """eng->X against the X sentences, X->eng against the English ones: a French column that holds the
    Spanish sentences must sink the French eng->X score, and X->eng is the chrF of English outputs
    against English references."""
    from sacrebleu.metrics import CHRF

    spanish = {r["eng_Latn"]: r["spa_Latn"] for r in lexicon.parallel_corpus()}
    rows = _slice()[:24]  # mostly training rows: the tiny model translates them best
    translator = Translator(str(tiny["int8"]), intra_threads=1)
    right = nllb.evaluate_chrf(translator, rows, ["fra_Latn"])
    swapped = nllb.evaluate_chrf(translator, [{**r, "fra_Latn": spanish[r["eng_Latn"]]} for r in rows],
                                 ["fra_Latn"])
    assert swapped["eng_to_x"]["fra_Latn"] < 0.6 * right["eng_to_x"]["fra_Latn"], (right, swapped)
    # X->eng: the English outputs of the French sentences, scored against the English sentences
    back = translator.translate([(r["fra_Latn"], "eng_Latn") for r in rows], src_lang="fra_Latn")
    english = CHRF().corpus_score(back, [[r["eng_Latn"] for r in rows]]).score
    french = CHRF().corpus_score(back, [[r["fra_Latn"] for r in rows]]).score
    assert english > 1.5 * french, (english, french)  # the outputs are English
    assert right["x_to_eng"]["fra_Latn"] == round(english, 2), (right, english, french)


def test_fingerprint(tiny):
    a = nllb.model_fingerprint(tiny["int8"])
    assert a == nllb.model_fingerprint(tiny["int8"]) and len(a) == 16
    assert a != nllb.model_fingerprint(tiny["fp32"])  # different weights, different key


def test_reconversion_replaces_atomically(tiny, tmp_path):
    out = tmp_path / "ct2"
    nllb.convert_to_ctranslate2(tiny["hf"], out, "int8")
    (out / "stale.txt").write_text("left from an older model")
    for killed in (".ct2.tmp-abc123", ".ct2.old-4242-99"):  # what a killed conversion left (older names)
        (tmp_path / killed).mkdir()
    again = nllb.convert_to_ctranslate2(tiny["hf"], out, "int8")
    assert again == out and not (out / "stale.txt").exists()
    assert nllb.model_fingerprint(out) == nllb.model_fingerprint(tiny["int8"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct2"]


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_sweep_removes_only_stale_temporary_folders(tmp_path):
    host = socket.gethostname()
    stale = [".eval-ct2-xyz", f".hf.tmp-{host}~{_dead_pid()}~q1", ".hf.old-123-456"]
    kept = [f".hf.tmp-{host}~{os.getpid()}~q2",  # this (live) process
            ".hf.tmp-another-host~1~q3",  # another machine's: its pid means nothing here
            "hf", ".eval-other"]
    for name in stale + kept:
        (tmp_path / name).mkdir()
    (tmp_path / ".eval-ct2-file").write_text("not a folder")
    removed = nllb.sweep_stale_tmp(tmp_path, (".eval-ct2-", ".hf.tmp-", ".hf.old-"))
    assert sorted(removed) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept + [".eval-ct2-file"])
    assert nllb.sweep_stale_tmp(tmp_path / "missing", (".eval-ct2-",)) == []


def test_ensure_toy_model_sweeps_leftovers_and_evaluates_once(tiny, tmp_path):
    """A run killed while evaluating leaves `.eval-ct2-*` (and a killed training `.hf.tmp-*`) in the model
    root: the next ensure_toy_model removes them, reuses the trained model, evaluates it once, caches."""
    shutil.copytree(tiny["hf"], tmp_path / "hf")
    for killed in (".eval-ct2-xyz", ".hf.tmp-abc"):
        (tmp_path / killed).mkdir()
        (tmp_path / killed / "model.bin").write_bytes(b"half a model")
    logs: list[str] = []
    hf_dir, stats, chrf = toy.ensure_toy_model(tmp_path, TINY, log=logs.append)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]  # leftovers and its own temporary folder gone
    assert hf_dir == tmp_path / "hf" and stats == tiny["stats"]  # not trained again
    assert not any(line.startswith("step ") for line in logs)
    assert set(chrf["eng_to_x"]) == set(chrf["x_to_eng"]) == {"fra_Latn", "jpn_Jpan", "hin_Deva", "zho_Hans"}
    info = json.loads((hf_dir / toy.TOY_INFO_FILE).read_text(encoding="utf-8"))
    assert info["chrf"] == chrf and info["config_key"] == toy.toy_model_key(TINY)
    logs.clear()
    assert toy.ensure_toy_model(tmp_path, TINY, log=logs.append) == (hf_dir, stats, chrf)
    assert len(logs) == 1 and "reusing" in logs[0]  # cached: neither trained nor evaluated again


def test_model_key_follows_the_settings():
    assert toy.toy_model_key(TINY) == toy.toy_model_key(ToyNllbSettings(**TINY.model_dump()))
    assert toy.toy_model_key(TINY) != toy.toy_model_key(TINY.model_copy(update={"seed": 1}))
    assert toy.QUICK.steps < ToyNllbSettings().steps


def test_missing_folders_raise_clear_errors(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError, match="no-such-model"):
        nllb.convert_to_ctranslate2(missing, tmp_path / "out", "int8")
    with pytest.raises(FileNotFoundError, match="no-such-model"):
        nllb.load_translator(missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="config.json"):
        nllb.convert_to_ctranslate2(empty, tmp_path / "out", "int8")
    with pytest.raises(FileNotFoundError, match="model.bin"):
        nllb.load_translator(empty)
    with pytest.raises(FileNotFoundError, match="empty"):
        nllb.model_fingerprint(empty)
    assert not (tmp_path / "out").exists()


def test_ct2_float32_greedy_equals_transformers_generate(tiny):
    import torch
    from transformers import M2M100ForConditionalGeneration

    model = M2M100ForConditionalGeneration.from_pretrained(str(tiny["hf"])).eval()
    translator, tok = nllb.load_translator(tiny["fp32"], compute_type="float32")
    rows = _slice()[:3]
    cases = [(rows[0]["eng_Latn"], "eng_Latn", "fra_Latn"), (rows[1]["eng_Latn"], "eng_Latn", "hin_Deva"),
             (rows[2]["zho_Hans"], "zho_Hans", "eng_Latn")]
    steps = 12
    for text, src, tgt in cases:
        tok.src_lang = src
        ids = tok(text, return_tensors="pt")
        with torch.no_grad():
            gen = model.generate(**ids, forced_bos_token_id=tok.convert_tokens_to_ids(tgt), num_beams=1,
                                 do_sample=False, max_new_tokens=steps)
        hf = [t for t in gen[0].tolist()[2:] if t != tok.pad_token_id]  # drop </s> start and language code
        if hf and hf[-1] == tok.eos_token_id:
            hf = hf[:-1]
        res = translator.translate_batch([tok.convert_ids_to_tokens(ids["input_ids"][0].tolist())],
                                         target_prefix=[[tgt]], beam_size=1, max_decoding_length=steps)
        ct2 = tok.convert_tokens_to_ids(res[0].hypotheses[0][1:])
        assert ct2 == hf, (text, tgt)
        assert len(set(ct2)) >= 3  # real output, not one token repeated


@pytest.mark.slow
def test_default_toy_model_reaches_quality_bar(tmp_path):
    hf_dir, stats, chrf = toy.ensure_toy_model(tmp_path)
    assert stats["n_heldout"] >= 40
    low = {lang: v for lang, v in chrf["eng_to_x"].items() if v < 80}
    assert not low, f"chrF below 80 (eng->X): {low}; all: {chrf}"
    assert set(chrf["eng_to_x"]) == set(lexicon.TARGET_LANGS)
    # cached: a second call neither trains nor evaluates again
    again = toy.ensure_toy_model(tmp_path, log=lambda line: None)
    assert again == (hf_dir, stats, chrf)
