"""Translating datasets: structure kept, memory reuse, incremental runs, mixed targets, kill-and-resume.

A tiny NLLB is trained for a few steps (quality is not the point here, the machinery is), converted
with the same code as the real model, and driven through the real CTranslate2 engine.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import ToyNllbSettings
from pipeline.corpora.mmmu import parse_options
from pipeline.lake import Lake
from pipeline.sources import ingest
from pipeline.toy import lexicon
from pipeline.toy.nllb import train_toy_nllb
from pipeline.translation import nllb
from pipeline.translation.datasets import (DATASETS, partition_folder, read_rows, rows_in_chunk, split_into_chunks,
                                          translate_rows, translate_texts)
from pipeline.translation.memory import TranslationMemory
from pipeline.translation.segment import sentences
from pipeline.translation.translator import DecodingSettings, Translator
from tests.conftest import small_profile

ROOT = Path(__file__).resolve().parent.parent
TINY = ToyNllbSettings(d_model=64, ffn_dim=128, encoder_layers=1, decoder_layers=1, steps=30,
                       warmup_steps=5, batch_size=32, log_every=1000)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small toy lake with the raw sources that get translated and a tiny converted NLLB."""
    root = tmp_path_factory.mktemp("tlake")
    profile = small_profile(str(root))
    lake = Lake.at(root)
    from pipeline.toy.world import build_world

    build_world(lake.toy_world().path, profile.toy_world, profile.languages)
    for source in ("llava_instruct", "cambrian", "mmmu"):
        ingest(source, profile, lake, log=lambda _: None)
    hf = lake.model("nllb", "hf")
    train_toy_nllb(None, hf.path, TINY, log=lambda _: None)
    nllb.convert_to_ctranslate2(hf.path, lake.model("nllb", "ct2").path, "int8")
    return profile, lake


def _translator(lake, **kw) -> Translator:
    return Translator(str(lake.model("nllb", "ct2")), intra_threads=1, **kw)


def test_structure_survives_and_memory_makes_reruns_free(world, tmp_path):
    _, lake = world
    t = _translator(lake)
    texts = ["<image>\nWhat colour is the circle?", "The circle is red. It is big.",
             "<image 1>\nWhere is the shape in the picture?\n(A) top left", "What colour is the circle?"]
    url = f"sqlite:///{tmp_path}/tm.sqlite"
    with t.open_memory(url) as memory:
        first = translate_texts(texts, "fra_Latn", t, memory, log=lambda _: None)
    assert first[0].startswith("<image>\n") and first[2].startswith("<image 1>\n") and "\n(A) " in first[2]
    with t.open_memory(url) as memory:
        from pipeline.translation.datasets import RunStats

        stats = RunStats()
        second = translate_texts(texts, "fra_Latn", t, memory, log=lambda _: None, stats=stats)
    assert second == first
    assert stats.model_calls == 0 and stats.cache_hits == stats.segments_unique == 5
    assert stats.segments_total == 6  # "What colour is the circle?" twice, translated once


def test_overlapping_batches_changes_nothing_but_speed(world):
    """overlap=True decodes the next batch early; translations and the per-batch callbacks are the same."""
    _, lake = world
    items = [(row["eng_Latn"], lang) for row in lexicon.parallel_corpus()[:40] for lang in ("fra_Latn", "kor_Hang")]
    runs = {}
    for overlap in (False, True):
        t = _translator(lake, batch_tokens=128, overlap=overlap)
        batches = []
        runs[overlap] = (t.translate(items, on_batch=batches.append), batches)
    assert runs[True] == runs[False]
    assert len(runs[True][1]) > 2, "several batches, so that one was decoded while another was stored"


def test_one_batch_mixes_target_languages(world):
    _, lake = world
    t = _translator(lake)
    targets = ["fra_Latn", "rus_Cyrl", "jpn_Jpan"]
    seen = []
    out = t.translate([("The circle is red.", lang) for lang in targets], on_batch=seen.extend)
    assert len(out) == 3 and t.stats.batches == 1
    assert [lang for _, lang, _ in seen] == targets
    # each hypothesis starts with its own target-language tag (the forced prefix), in one engine call
    hyps = t._run(t._tokenize(["The circle is red."] * 3, "eng_Latn"), targets)
    assert [h[0] for h in hyps] == targets


def test_empty_or_letter_free_segments_never_reach_the_model(world):
    _, lake = world
    with pytest.raises(ValueError, match="segment the text first"):
        _translator(lake).translate([("  ", "fra_Latn")])
    with pytest.raises(ValueError):
        _translator(lake).translate([("3.14 !", "fra_Latn")])


def test_new_rows_cost_only_their_new_sentences(world, tmp_path):
    _, lake = world
    spec = DATASETS["llava_instruct"]
    rows = spec.load(lake)
    t = _translator(lake)
    url = f"sqlite:///{tmp_path}/tm.sqlite"
    with t.open_memory(url) as memory:
        _, first = translate_rows(spec, rows, "spa_Latn", t, memory, log=lambda _: None)
        assert first.model_calls == first.segments_unique > 0
        new_row = {"id": "new", "conversations": [{"from": "human", "value": "<image>\nIs the star big or small?"},
                                                  {"from": "gpt", "value": "The star grows."}]}
        out, second = translate_rows(spec, rows + [new_row], "spa_Latn", t, memory, log=lambda _: None)
    known = {s for r in rows for text in spec.texts(r) for s in sentences(text)}
    expected_new = len({"Is the star big or small?", "The star grows."} - known)
    assert second.model_calls == expected_new
    assert second.cache_hits == first.segments_unique
    assert out[-1]["lang"] == "spa_Latn" and out[-1]["source_conversations"] == new_row["conversations"]


def test_other_decoding_settings_or_model_miss_the_memory(world, tmp_path):
    _, lake = world
    url = f"sqlite:///{tmp_path}/tm.sqlite"
    greedy, beam = _translator(lake), _translator(lake, settings=DecodingSettings(beam_size=2))
    with greedy.open_memory(url) as m:
        translate_texts(["The circle is red."], "kor_Hang", greedy, m, log=lambda _: None)
    with beam.open_memory(url) as m:
        assert m.get_many(["The circle is red."], "kor_Hang") == {}
    with TranslationMemory(url, "another-model", {**greedy.settings.as_dict(), "src_lang": "eng_Latn"}) as m:
        assert m.get_many(["The circle is red."], "kor_Hang") == {}


def test_mmmu_translation_keeps_answers_and_options_shape(world, tmp_path):
    _, lake = world
    spec = DATASETS["mmmu"]
    rows = spec.load(lake)
    t = _translator(lake)
    with t.open_memory(f"sqlite:///{tmp_path}/tm.sqlite") as memory:
        out, _ = translate_rows(spec, rows, "hin_Deva", t, memory, log=lambda _: None)
    for src, dst in zip(rows, out):
        assert dst["answer"] == src["answer"] and dst["id"] == src["id"]
        assert len(parse_options(dst["options"])) == len(parse_options(src["options"]))
        assert dst["question"].startswith("<image 1>\n") and dst["image_1"] == src["image_1"]


def test_killed_run_resumes_without_loss_or_duplicates(world, tmp_path):
    """Kill the CLI mid-partition with SIGKILL; the re-run redoes at most the batch in flight."""
    profile, lake = world
    env = {**os.environ, "MMG4_CONFIG": str(ROOT / "configs" / "toy.yaml"), "PYTHONUNBUFFERED": "1"}
    n = profile.translation.chunk_count("llava_instruct")  # toy.yaml splits it; the test kills chunk 0
    cmd = [sys.executable, "-m", "pipeline.translation", "translate", "--dataset", "llava_instruct",
           "--lang", "ben_Beng", "--chunk", "0", "--lake", str(lake.root), "--batch-tokens", "64"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    stored = 0
    for line in proc.stderr:
        if "translated" in line and "/" in line:
            stored = int(line.split("translated ")[1].split("/")[0])
            if stored >= 8:
                proc.send_signal(signal.SIGKILL)
                break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed; use smaller batches"
    # the partition is written only when complete: a killed run leaves no partial output
    folder = partition_folder(lake, "llava_instruct", "ben_Beng", 0, n)
    assert not (folder / "rows.jsonl").exists()

    done = subprocess.run(cmd + ["--quiet"], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    stats = json.loads(done.stdout.strip().splitlines()[-1])
    assert stats["cache_hits"] >= stored, "every batch stored before the kill is reused"
    assert stats["cache_hits"] + stats["model_calls"] == stats["segments_unique"]
    t = _translator(lake)
    with t.open_memory(lake.memory_url()) as m:
        assert m.count("ben_Beng") == stats["segments_unique"], "no sentence lost, none stored twice"
    rows = read_rows(folder)
    spec = DATASETS["llava_instruct"]
    assert [r["id"] for r in rows] == [r["id"] for r in rows_in_chunk(spec, spec.load(lake), 0, n)]
    assert all(r["lang"] == "ben_Beng" for r in rows)


def test_chunks_split_rows_completely_and_stably(world):
    """Every row lands in exactly one chunk, and new rows change only the chunks they fall into."""
    _, lake = world
    spec = DATASETS["llava_instruct"]
    rows = spec.load(lake)
    chunks = [rows_in_chunk(spec, rows, c, 3) for c in range(3)]
    ids = [r["id"] for chunk in chunks for r in chunk]
    assert sorted(ids) == sorted(r["id"] for r in rows) and all(chunks)
    assert split_into_chunks(spec, rows, 3) == chunks, "the CLI's one-pass split agrees with the assets'"
    new = {**rows[0], "id": "added-row"}
    grown = [rows_in_chunk(spec, rows + [new], c, 3) for c in range(3)]
    changed = [c for c in range(3) if grown[c] != chunks[c]]
    assert len(changed) == 1 and grown[changed[0]][-1]["id"] == "added-row"
    with pytest.raises(ValueError, match="out of range"):
        rows_in_chunk(spec, rows, 3, 3)
