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
from pipeline.raw.mmmu import parse_options
from pipeline.lake import Lake
from pipeline.raw.ingest import ingest_source
from pipeline.rows import chunk_of, read_rows, write_parquet
from pipeline.stats import StepStats
from pipeline.toy import lexicon
from pipeline.toy.nllb import train_toy_nllb
from pipeline.translation import nllb
from pipeline.translation.datasets import DATASETS, partition_folder
from pipeline.translation.run import memory_url, translate_rows, translate_texts
from pipeline.translation.memory import TranslationMemory
from pipeline.translation.quality import check_structure, must_survive_diff
from pipeline.translation.segment import must_survive, sentences
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
        ingest_source(source, profile, lake, log=lambda _: None)
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
        first = translate_texts(texts, "fra_Latn", t, memory, StepStats("t"), log=lambda _: None)
    assert first[0].startswith("<image>\n") and first[2].startswith("<image 1>\n") and "\n(A) " in first[2]
    with t.open_memory(url) as memory:
        stats = StepStats("t")
        second = translate_texts(texts, "fra_Latn", t, memory, stats, log=lambda _: None)
    assert second == first
    assert stats.model_calls == 0 and stats.cache_hits == stats.counters["segments_unique"] == 5
    assert stats.counters["segments_total"] == 6  # "What colour is the circle?" twice, translated once


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


PRICE = "The price rose from $4.50 to $5.25, i.e. 16.7%."
EMOJI = "The circle is red 😀 and the star is big 👍🏽."


def test_numbers_and_emoji_survive_the_model(world):
    """The toy NLLB knows no digits, currency signs or emoji: it loses them, the retry loses them again,
    and the fallback translates around them, so every one reaches the output exactly."""
    _, lake = world
    t = _translator(lake)
    items = [(PRICE, "fra_Latn"), (EMOJI, "jpn_Jpan"), (PRICE, "rus_Cyrl"), ("The circle is red.", "fra_Latn")]
    seen = []
    out = t.translate(items, on_batch=seen.extend)
    for (src, _), tgt in zip(items, out):
        assert must_survive_diff(src, tgt) == ([], []), (src, tgt)
    assert all(tok in out[0] for tok in ("$4.50", "$5.25", "16.7%"))
    assert "price" not in out[0] and "circle" not in out[1], "the words went to the model, not copied"
    assert "😀" in out[1] and "👍🏽" in out[1]
    assert t.stats.numbers_fallback == 3 and t.stats.retried >= 3, t.stats
    assert [x for _, _, x in sorted(seen)] == [x for _, x in sorted(zip(items, out))], "the memory gets the fallback"


def test_numbers_survive_whole_texts_and_pass_the_structure_check(world, tmp_path):
    _, lake = world
    t = _translator(lake)
    texts = [f"<image 1>\n{PRICE} What colour is the circle?\n(A) 3.14\n(B) 2,000 😀", EMOJI]
    with t.open_memory(f"sqlite:///{tmp_path}/tm.sqlite") as memory:
        out = translate_texts(texts, "spa_Latn", t, memory, StepStats("t"), log=lambda _: None)
    report = check_structure(zip(texts, out))
    assert report.passed and report.number_failures == 0, report.examples
    assert must_survive(out[0]).count("$4.50") == 1


def test_empty_or_letter_free_segments_never_reach_the_model(world):
    _, lake = world
    with pytest.raises(ValueError, match="segment the text first"):
        _translator(lake).translate([("  ", "fra_Latn")])
    with pytest.raises(ValueError):
        _translator(lake).translate([("3.14 !", "fra_Latn")])


def test_new_rows_cost_only_their_new_sentences(world, tmp_path):
    _, lake = world
    spec = DATASETS["llava_instruct"]
    rows = spec.load(lake, 0, 1)
    t = _translator(lake)
    url = f"sqlite:///{tmp_path}/tm.sqlite"
    first, second = StepStats("first"), StepStats("second")
    with t.open_memory(url) as memory:
        translate_rows(spec, rows, "spa_Latn", t, memory, first, log=lambda _: None)
        assert first.model_calls == first.counters["segments_unique"] > 0
        new_row = {"id": "new", "conversations": [{"from": "human", "value": "<image>\nIs the star big or small?"},
                                                  {"from": "gpt", "value": "The star grows."}]}
        out = translate_rows(spec, rows + [new_row], "spa_Latn", t, memory, second, log=lambda _: None)
    known = {s for r in rows for text in spec.texts(r) for s in sentences(text)}
    expected_new = len({"Is the star big or small?", "The star grows."} - known)
    assert second.model_calls == expected_new
    assert second.cache_hits == first.counters["segments_unique"]
    assert out[-1]["lang"] == "spa_Latn" and out[-1]["source_conversations"] == new_row["conversations"]


def test_other_decoding_settings_or_model_miss_the_memory(world, tmp_path):
    _, lake = world
    url = f"sqlite:///{tmp_path}/tm.sqlite"
    greedy, beam = _translator(lake), _translator(lake, settings=DecodingSettings(beam_size=2))
    with greedy.open_memory(url) as m:
        translate_texts(["The circle is red."], "kor_Hang", greedy, m, StepStats("t"), log=lambda _: None)
    with beam.open_memory(url) as m:
        assert m.get_many(["The circle is red."], "kor_Hang") == {}
    with TranslationMemory(url, "another-model", {**greedy.settings.as_dict(), "src_lang": "eng_Latn"}) as m:
        assert m.get_many(["The circle is red."], "kor_Hang") == {}


def test_mmmu_translation_keeps_answers_and_options_shape(world, tmp_path):
    _, lake = world
    spec = DATASETS["mmmu"]
    rows = spec.load(lake, 0, 1)
    t = _translator(lake)
    with t.open_memory(f"sqlite:///{tmp_path}/tm.sqlite") as memory:
        out = translate_rows(spec, rows, "hin_Deva", t, memory, StepStats("t"), log=lambda _: None)
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
    with t.open_memory(memory_url(profile.translation, lake)) as m:
        assert m.count("ben_Beng") == stats["segments_unique"], "no sentence lost, none stored twice"
    rows = read_rows(folder)
    spec = DATASETS["llava_instruct"]
    assert [r["id"] for r in rows] == [r["id"] for r in spec.load(lake, 0, n)]
    assert all(r["lang"] == "ben_Beng" for r in rows)


def test_chunks_split_rows_completely_and_stably(world, tmp_path):
    """Every row lands in exactly one chunk, a chunk reads only its own rows, and new rows change only the
    chunks they fall into."""
    _, lake = world
    spec = DATASETS["llava_instruct"]
    rows = spec.load(lake, 0, 1)
    chunks = [spec.load(lake, c, 3) for c in range(3)]
    ids = [r["id"] for chunk in chunks for r in chunk]
    assert sorted(ids) == sorted(r["id"] for r in rows) and all(chunks)
    assert all(chunk_of(r["id"], 3) == c for c, chunk in enumerate(chunks) for r in chunk)
    # grow the source by one row: exactly one chunk changes, by that row
    path = tmp_path / "rows.parquet"
    by_id = lambda r: str(r["id"])  # noqa: E731
    write_parquet(path, rows + [{**rows[0], "id": "added-row"}], row_id=by_id, documents=True)
    from pipeline.rows import read_parquet

    grown = [read_parquet(path, c, 3) for c in range(3)]
    changed = [c for c in range(3) if [r["id"] for r in grown[c]] != [r["id"] for r in chunks[c]]]
    assert len(changed) == 1 and "added-row" in {r["id"] for r in grown[changed[0]]}
    with pytest.raises(ValueError, match="out of range"):
        spec.load(lake, 3, 3)


def test_a_run_served_by_the_memory_never_loads_the_model(world, tmp_path):
    """The model and its tokenizer (transformers, torch) load only when a sentence misses the memory."""
    _, lake = world
    url = f"sqlite:///{tmp_path}/tm.sqlite"
    texts = ["<image>\nWhat colour is the circle?", "The circle is red."]
    first = _translator(lake)
    with first.open_memory(url) as memory:
        out = translate_texts(texts, "fra_Latn", first, memory, StepStats("t"), log=lambda _: None)
    assert first.loaded
    second = _translator(lake)
    with second.open_memory(url) as memory:
        again = translate_texts(texts, "fra_Latn", second, memory, StepStats("t"), log=lambda _: None)
    assert not second.loaded and again == out


def test_an_unchanged_partition_is_reused_and_any_change_of_its_inputs_redoes_it(world):
    """Same raw content, model, settings and code: reused (no row read, no check judged). A changed setting
    of the key redoes the partition, served by the memory; a changed source redoes it too."""
    profile, lake = world
    from pipeline.translation.run import Engines, translate_partition

    quiet = lambda _: None  # noqa: E731
    first = translate_partition("mmmu", "urd_Arab", lake, Engines(profile.translation, lake), log=quiet)
    again = translate_partition("mmmu", "urd_Arab", lake, Engines(profile.translation, lake), log=quiet)
    assert again.result.stats.counters == {"reused": 1} and again.result.data_version == first.result.data_version
    assert {k: (c.passed, c.metadata) for k, c in again.checks.items()} == \
        {k: (c.passed, c.metadata) for k, c in first.checks.items()}
    stricter = profile.translation.model_copy(update={"langid_threshold": 0.5})
    redone = translate_partition("mmmu", "urd_Arab", lake, Engines(stricter, lake), log=quiet)
    s = redone.result.stats
    assert "reused" not in s.counters and s.model_calls == 0 and s.cache_hits == s.counters["segments_unique"] > 0
    assert redone.result.data_version == first.result.data_version
    ingest_source("mmmu", profile, lake, log=quiet)
    same_source = translate_partition("mmmu", "urd_Arab", lake, Engines(stricter, lake), log=quiet)
    assert same_source.result.stats.counters.get("reused") == 1, "re-ingesting the same content changes nothing"


def test_one_language_per_row_gives_every_row_to_exactly_one_language(world, tmp_path):
    """`translation.one_language_per_row`: each row is translated into one language only, the languages
    together hold every row once, the others' rows are accounted as dropped with the reason, a reuse reports
    the same, and MMMU (every question in every language) refuses it."""
    from pydantic import ValidationError

    from pipeline.config import TranslationSettings
    from pipeline.translation.run import Engines, row_language, translate_partition

    profile, lake = world
    langs = list(profile.languages)
    settings = profile.translation.model_copy(update={"one_language_per_row": ("cambrian_image",)})
    source = DATASETS["cambrian_image"].load(lake, 0, 1)
    quiet = lambda _: None  # noqa: E731
    seen: list[str] = []
    for lang in langs:
        part = translate_partition("cambrian_image", lang, lake, Engines(settings, lake), log=quiet, languages=langs)
        rows = read_rows(partition_folder(lake, "cambrian_image", lang, 0, 1))
        assert all(row_language(str(r["id"]), langs) == lang for r in rows)
        s = part.result.stats
        assert s.rows_in == len(source) and s.rows_kept == len(rows) and s.rows_dropped == len(source) - len(rows)
        assert s.accounted and s.reasons["translated into another language (translation.one_language_per_row)"] \
            == len(source) - len(rows)
        seen += [str(r["id"]) for r in rows]
    assert sorted(seen) == sorted(str(r["id"]) for r in source)  # every row once
    assert len({row_language(str(r["id"]), langs) for r in source}) > 1  # spread, not all in one language
    again = translate_partition("cambrian_image", langs[0], lake, Engines(settings, lake), log=quiet, languages=langs)
    assert again.result.stats.counters.get("reused") == 1 and again.result.stats.accounted
    # the plain setting translates every row into the language again (another input key, not a reuse)
    full = translate_partition("cambrian_image", langs[0], lake, Engines(profile.translation, lake), log=quiet)
    assert full.result.stats.rows_kept == len(source) and "reused" not in full.result.stats.counters
    with pytest.raises(ValueError, match="must be one of the profile's languages"):
        translate_partition("cambrian_image", langs[0], lake, Engines(settings, lake), log=quiet)
    with pytest.raises(ValidationError, match="mmmu cannot be translated one language per row"):
        TranslationSettings(one_language_per_row=("mmmu",))
