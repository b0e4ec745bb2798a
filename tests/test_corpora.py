"""Corpus readers against the toy files in their real formats, and the quarantine of bad input.

Every reader must account for every row: kept + quarantined = read, with a reason per quarantined row.
"""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from pipeline.raw.accounting import SourceError, collect
from pipeline.raw.conversations import read_conversations
from pipeline.raw.flores import read_flores
from pipeline.raw.mmmu import parse_options, read_mmmu
from pipeline.raw.wit import read_wit
from pipeline.raw.xstorycloze import language_of, read_xstorycloze
from pipeline.languages import LANGS, TARGET_LANGS
from pipeline.lake import Manifest
from pipeline.raw.ingest import ingest_source
from pipeline.raw.sources import SOURCES


def _balanced(stream):
    result = collect(stream)
    assert result.read == len(result.kept) + len(result.quarantined)
    return result


def _reasons(result):
    return {q.reason.split(":")[0] for q in result.quarantined}


def test_llava_json_list_keeps_good_rows_and_quarantines_each_bad_kind(toy_lake):
    profile, lake = toy_lake
    r = _balanced(read_conversations(lake.toy_world("llava/llava_instruct.json"), "llava_instruct",
                                     lake.toy_world("images")))
    assert len(r.kept) == profile.toy_world.llava_rows
    assert _reasons(r) == {"missing field", "image path escapes the image root", "image missing",
                           "image unreadable", "bad turn"}
    first = r.kept[0]
    assert first["image"].startswith("coco/train2017/") and first["conversations"][0]["value"].startswith("<image>\n")


def test_cambrian_jsonl_quarantines_malformed_line_and_keeps_text_only_rows(toy_lake):
    _, lake = toy_lake
    r = _balanced(read_conversations(lake.toy_world("cambrian/Cambrian7M.jsonl"), "cambrian", lake.toy_world("images")))
    assert {"malformed JSON", "missing field"} <= _reasons(r)
    bad_json = next(q for q in r.quarantined if q.reason.startswith("malformed JSON"))
    assert (bad_json.row, bad_json.row_kind) == (4, "line")  # the line number a person can open
    text_only = [row for row in r.kept if "image" not in row]
    assert text_only, "text-only rows ('', 'None', 'nan', no key) are kept without an image"
    assert not any("<image>" in t["value"] for row in text_only for t in row["conversations"])


def test_palo_rows_are_multilingual(toy_lake):
    _, lake = toy_lake
    r = _balanced(read_conversations(lake.toy_world("palo/palo_multilingual.json"), "palo", lake.toy_world("images")))
    langs = {row["id"].split("_0")[0][:8] for row in r.kept}
    assert len(langs) == 10


def test_truncated_json_list_quarantines_the_unfinished_element(tmp_path):
    bad = tmp_path / "llava.json"
    bad.write_text('[{"id": 1,')
    r = _balanced(read_conversations(bad, "llava_instruct"))
    assert not r.kept and len(r.quarantined) == 1
    q = r.quarantined[0]
    assert (q.file, q.row, q.row_kind) == ("llava.json", 0, "index")
    assert q.reason.startswith("malformed JSON: element 0 (line 1) never ends")


def test_missing_corpus_file_names_the_profile_key(tmp_path):
    with pytest.raises(SourceError, match=r"sources\.palo\.path"):
        read_conversations(tmp_path / "nope.json", "palo")


def test_duplicate_ids_are_quarantined(tmp_path):
    conv = [{"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "Hello."}]
    f = tmp_path / "c.jsonl"
    f.write_text("\n".join(json.dumps({"id": "x", "conversations": conv}) for _ in range(2)))
    r = _balanced(read_conversations(f, "cambrian"))
    assert len(r.kept) == 1 and r.quarantined[0].reason.startswith("duplicate id")


def test_wit_maps_languages_and_quarantines_unknown_codes(toy_lake):
    profile, lake = toy_lake
    r = _balanced(read_wit(str(lake.toy_world("wit/*.tsv")), profile.languages))
    assert len(r.kept) == profile.toy_world.wit_rows
    assert {row["lang"] for row in r.kept} == set(LANGS)
    assert _reasons(r) == {"unknown language", "missing field"}


def test_wit_rows_outside_the_profile_languages_are_accounted(toy_lake):
    _, lake = toy_lake
    r = _balanced(read_wit(str(lake.toy_world("wit/*.tsv")), ("fra_Latn",)))
    assert {row["lang"] for row in r.kept} == {"eng_Latn", "fra_Latn"}
    assert "language not in profile" in _reasons(r)


def test_flores_is_line_aligned_and_quarantines_partial_rows(toy_lake):
    _, lake = toy_lake
    r = _balanced(read_flores(str(lake.toy_world("flores")), "devtest", TARGET_LANGS))
    assert set(r.kept[0]) == {"id", *LANGS}
    assert [q.reason.split(":")[0] for q in r.quarantined] == ["empty sentence"]


def test_flores_misaligned_files_are_an_error(tmp_path):
    (tmp_path / "eng_Latn.devtest").write_text("a\nb\n")
    (tmp_path / "fra_Latn.devtest").write_text("a\n")
    with pytest.raises(SourceError, match="not line-aligned"):  # at once, before any row is read
        read_flores(str(tmp_path), "devtest", ("fra_Latn",))


def test_xstorycloze_reads_every_language(toy_lake):
    profile, lake = toy_lake
    r = _balanced(read_xstorycloze(str(lake.toy_world("xstorycloze/*.tsv"))))
    assert len(r.kept) == len(LANGS) * profile.toy_world.xstorycloze_stories
    assert {row["answer_right_ending"] for row in r.kept} <= {1, 2}
    assert _reasons(r) == {"bad answer"}
    assert language_of("spring2016.val.ru.tsv.split_20_80_eval.tsv") == "rus_Cyrl"


def test_mmmu_schema_options_and_images(toy_lake):
    profile, lake = toy_lake
    r = _balanced(read_mmmu(str(lake.toy_world("mmmu/*/validation-*.parquet"))))
    assert len(r.kept) == profile.toy_world.mmmu_questions
    mc = next(row for row in r.kept if row["question_type"] == "multiple-choice")
    assert "<image 1>" in mc["question"] and mc["answer"] in "ABCD"
    assert mc["subject"] in {"Art", "Design", "Geography", "Math"} and mc["id"].startswith("validation_")
    assert _reasons(r) == {"bad options", "bad answer"}


def test_mmmu_options_are_parsed_safely():
    assert parse_options("['a', 'b']") == ["a", "b"]
    with pytest.raises(ValueError):
        parse_options("__import__('os').system('true')")


@pytest.mark.parametrize("name", [s.name for s in SOURCES.values() if s.layout != "captions"])
def test_ingest_publishes_rows_quarantine_and_manifest(toy_lake, tmp_path, name):
    profile, lake = toy_lake
    ing = ingest_source(name, profile, lake, log=lambda _: None)
    folder = lake.raw(name)
    manifest = Manifest.read(folder)
    x = manifest.extra
    assert x["rows_in"] == x["rows_kept"] + x["rows_quarantined"] == ing.stats.rows_in > 0
    quarantine = [json.loads(line) for line in (folder / "quarantine.jsonl").read_text().splitlines()]
    assert len(quarantine) == x["rows_quarantined"] and all(q["reason"] for q in quarantine)
    assert pq.read_metadata(folder / "rows.parquet").num_rows == x["rows_kept"]
    # unchanged input -> same content digest (the asset's data version)
    assert ingest_source(name, profile, lake, log=lambda _: None).data_version == manifest.digest()
