"""One bad row never stops a source: each defect a user found, fed through the real reader or ingest_source.

Every test checks the quarantine record (file, row, row_kind, reason) and that kept + quarantined = read.
"""
from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.config import RawLimits, load_profile
from pipeline.lake import Lake
from pipeline.raw.accounting import SourceError, collect
from pipeline.raw.conversations import read_conversations
from pipeline.raw.flores import read_flores
from pipeline.raw.ingest import ingest_source
from pipeline.raw.mmmu import read_mmmu
from pipeline.raw.wit import read_wit
from pipeline.raw.xstorycloze import read_xstorycloze
from pipeline.rows import read_parquet

CONV = [{"from": "human", "value": "What colour is the square?"}, {"from": "gpt", "value": "It is red."}]
WIT_COLUMNS = ("language", "page_url", "image_url", "page_title", "section_title", "caption_reference_description",
               "caption_attribution_description", "mime_type")


def _row(i, **extra):
    return {"id": f"r{i}", "conversations": CONV, **extra}


def _collect(stream):
    r = collect(stream)
    assert r.read == len(r.kept) + len(r.quarantined)
    return r


def _only(r):
    assert len(r.quarantined) == 1, [q.reason for q in r.quarantined]
    return r.quarantined[0]


def _wit_line(i, **over):
    row = {"language": "en", "page_url": f"https://en.wikipedia.org/wiki/P{i}",
           "image_url": f"https://upload.wikimedia.org/{i}.jpg", "page_title": f"P{i}", "section_title": "",
           "caption_reference_description": f"A red square {i}", "caption_attribution_description": "",
           "mime_type": "image/jpeg", **over}
    return "\t".join(row[c] for c in WIT_COLUMNS)


def _wit_tsv(path, lines):
    path.write_bytes(b"\n".join(["\t".join(WIT_COLUMNS).encode(), *lines]) + b"\n")
    return path


def _profile(tmp_path, **sources):
    """The toy profile with its lake in tmp_path and some sources pointed at files written by the test."""
    base = load_profile("configs/toy.yaml")
    updates = {name: getattr(base.sources, name).model_copy(update=u) for name, u in sources.items()}
    return base.model_copy(update={"lake_root": str(tmp_path / "lake"),
                                   "sources": base.sources.model_copy(update=updates)}), Lake.at(tmp_path / "lake")


def _quarantine_file(lake, name):
    return [json.loads(line) for line in (lake.raw(name) / "quarantine.jsonl").read_text().splitlines()]


# --- 1. a non-UTF-8 byte ---------------------------------------------------------------------------------

def test_bad_byte_in_a_llava_json_list_costs_one_element_not_the_source(tmp_path):
    rows = [json.dumps(_row(i)).encode() for i in range(3)]
    rows[1] = rows[1].replace(b"It is red.", b"It is r\xe9d.")  # Latin-1, not UTF-8
    f = tmp_path / "llava.json"
    f.write_bytes(b"[\n" + b",\n".join(rows) + b"\n]\n")
    profile, lake = _profile(tmp_path, llava_instruct={"path": str(f), "image_root": None})
    stats = ingest_source("llava_instruct", profile, lake, log=lambda _: None).stats
    assert (stats.rows_in, stats.rows_kept, stats.rows_quarantined) == (3, 2, 1)
    [q] = _quarantine_file(lake, "llava_instruct")
    assert (q["file"], q["row"], q["row_kind"]) == ("llava.json", 1, "index")
    assert q["reason"].startswith("bad encoding: byte 0xe9 in element 1 (line 3) is not UTF-8")
    assert "r\\xe9d" in q["raw"]  # the bad byte shown, not lost
    assert [r["id"] for r in read_parquet(lake.raw("llava_instruct") / "rows.parquet")] != []


def test_bad_byte_in_a_cambrian_jsonl_costs_one_line(tmp_path):
    lines = [json.dumps(_row(i)).encode() for i in range(400)]
    lines[250] = lines[250].replace(b"square", b"squ\xff\xfere")
    f = tmp_path / "Cambrian7M.jsonl"
    f.write_bytes(b"\n".join(lines) + b"\n")
    assert f.read_bytes().index(b"\xff") > 20_000  # deep in the file, as the user's "position 44284"
    profile, lake = _profile(tmp_path, cambrian={"path": str(f), "image_root": None})
    stats = ingest_source("cambrian", profile, lake, log=lambda _: None).stats
    assert (stats.rows_in, stats.rows_kept, stats.rows_quarantined) == (400, 399, 1)
    [q] = _quarantine_file(lake, "cambrian")
    assert (q["file"], q["row"], q["row_kind"]) == ("Cambrian7M.jsonl", 251, "line")
    assert q["reason"].startswith("bad encoding: byte 0xff at byte ")


def test_bad_byte_in_a_wit_tsv_costs_one_line(tmp_path):
    lines = [_wit_line(i).encode() for i in range(5)]
    lines[2] = lines[2].replace(b"red", b"r\xc3d")  # a truncated two-byte sequence
    f = _wit_tsv(tmp_path / "wit.tsv", lines)
    r = _collect(read_wit(str(f), ("fra_Latn",)))
    q = _only(r)
    assert (q.file, q.row, q.row_kind) == ("wit.tsv", 4, "line")  # line 1 is the header
    assert q.reason.startswith("bad encoding: byte 0xc3 at byte ")
    assert len(r.kept) == 4


def test_bad_byte_in_a_gzipped_wit_tsv_and_a_damaged_gzip(tmp_path):
    lines = [_wit_line(i).encode() for i in range(3)]
    lines[0] += b"\xff"
    body = b"\n".join(["\t".join(WIT_COLUMNS).encode(), *lines]) + b"\n"
    (tmp_path / "ok.tsv.gz").write_bytes(gzip.compress(body))
    r = _collect(read_wit(str(tmp_path / "ok.tsv.gz"), ()))
    assert _only(r).row == 2 and len(r.kept) == 2
    (tmp_path / "cut.tsv.gz").write_bytes(gzip.compress(body * 50)[:-40])  # a download cut short
    with pytest.raises(SourceError, match=r"cut\.tsv\.gz: cannot read the file .* damaged or truncated"):
        collect(read_wit(str(tmp_path / "cut.tsv.gz"), ()))


def test_bad_byte_in_flores_and_xstorycloze(tmp_path):
    (tmp_path / "eng_Latn.devtest").write_bytes(b"One.\nTwo.\nThree.\n")
    (tmp_path / "fra_Latn.devtest").write_bytes(b"Un.\nDeux \xff.\nTrois.\n")
    r = _collect(read_flores(str(tmp_path), "devtest", ("fra_Latn",)))
    q = _only(r)
    assert (q.row, q.row_kind) == (2, "line") and q.reason.startswith("bad encoding: fra_Latn.devtest line 2")
    cols = ("story_id", "input_sentence_1", "input_sentence_2", "input_sentence_3", "input_sentence_4",
            "sentence_quiz1", "sentence_quiz2", "answer_right_ending")
    good = "\t".join(["s1", "a", "b", "c", "d", "e", "f", "1"]).encode()
    (tmp_path / "xstorycloze.fra_Latn.eval.tsv").write_bytes(
        b"\n".join(["\t".join(cols).encode(), good, good.replace(b"b", b"\xe9"), good]) + b"\n")
    r = _collect(read_xstorycloze(str(tmp_path / "xstorycloze.*.tsv")))
    q = _only(r)
    assert (q.row, q.row_kind) == (3, "line") and q.reason.startswith("bad encoding")


# --- 2. a lone surrogate -----------------------------------------------------------------------------------

def test_lone_surrogate_is_quarantined_before_the_lake_write(tmp_path):
    """'\\ud800' is valid JSON; stored, it raised UnicodeEncodeError when the lake wrote the rows."""
    rows = [_row(0), _row(1, conversations=[CONV[0], {"from": "gpt", "value": "red \\ud800"}]), _row(2)]
    text = json.dumps(rows).replace("\\\\ud800", "\\ud800")
    f = tmp_path / "llava.json"
    f.write_text(text)
    profile, lake = _profile(tmp_path, llava_instruct={"path": str(f), "image_root": None})
    stats = ingest_source("llava_instruct", profile, lake, log=lambda _: None).stats
    assert (stats.rows_in, stats.rows_kept, stats.rows_quarantined) == (3, 2, 1)
    [q] = _quarantine_file(lake, "llava_instruct")
    assert (q["row"], q["row_kind"]) == (1, "index")
    assert q["reason"] == "bad text: lone surrogate in conversations[1].value (not storable as UTF-8)"
    # the same in JSONL, and in a key
    g = tmp_path / "c.jsonl"
    g.write_text(json.dumps(_row(0)) + "\n" + '{"id": "x", "\\udfff": 1, "conversations": ' + json.dumps(CONV) + "}\n")
    q = _only(_collect(read_conversations(g, "cambrian")))
    assert (q.row, q.row_kind) == (2, "line") and q.reason.startswith("bad text: lone surrogate in a key")


# --- 3. a TSV line with extra fields ---------------------------------------------------------------------------

def test_wit_line_with_extra_fields_is_quarantined_and_the_rest_kept(tmp_path):
    lines = [_wit_line(i).encode() for i in range(200)]
    lines[125] += b"\tx\ty\tz\tw\tv"  # pandas: "Expected 8 fields in line 127, saw 13"
    lines[10] = b"\t".join(lines[10].split(b"\t")[:5])  # and one too short
    f = _wit_tsv(tmp_path / "wit_v1.train.tsv", lines)
    profile, lake = _profile(tmp_path, wit={"path": str(f)})
    stats = ingest_source("wit", profile, lake, log=lambda _: None).stats
    assert (stats.rows_in, stats.rows_kept, stats.rows_quarantined) == (200, 198, 2)
    q = {r["row"]: r for r in _quarantine_file(lake, "wit")}
    assert q[127]["reason"] == "bad row: expected 8 fields, got 13" and q[127]["row_kind"] == "line"
    assert q[12]["reason"] == "bad row: expected 8 fields, got 5"


def test_quoted_fields_and_an_unclosed_quote(tmp_path):
    """Fields in quotes may hold tabs and newlines (pandas' dialect); an unclosed quote costs the lines it
    swallows, named by the first."""
    lines = [_wit_line(0).encode(),
             _wit_line(1, page_title='"Title\twith tab\nand newline"').encode(),
             _wit_line(2).encode(),
             _wit_line(3, page_title='"never closed').encode(),
             _wit_line(4).encode()]
    r = _collect(read_wit(str(_wit_tsv(tmp_path / "w.tsv", lines)), ()))
    assert [k["page_title"] for k in r.kept] == ["P0", "Title\twith tab\nand newline", "P2"]
    q = _only(r)
    assert q.row == 6 and q.reason == "bad row: expected 8 fields, got 4 (lines 6-7: an unclosed quote?)"


# --- 4. a malformed element inside a JSON list ------------------------------------------------------------------

@pytest.mark.parametrize("bad, reason", [
    ('{"id": "b", "conversations": [}', "malformed JSON: Expecting value at line 3"),
    ('{"id": "b" "conversations": []}', "malformed JSON: Expecting ',' delimiter at line 3"),
    ('{"id": "b", "conversations": NaNa}', "malformed JSON: "),
    ('{"id": "b"} {"id": "c"}', "malformed JSON: Extra data at line 3"),
])
def test_malformed_element_in_a_json_list_costs_that_element(tmp_path, bad, reason):
    f = tmp_path / "palo.json"
    f.write_text("[\n" + json.dumps(_row(0)) + ",\n" + bad + ",\n" + json.dumps(_row(2)) + "\n]")
    profile, lake = _profile(tmp_path, palo={"path": str(f), "image_root": None})
    stats = ingest_source("palo", profile, lake, log=lambda _: None).stats
    assert (stats.rows_in, stats.rows_kept, stats.rows_quarantined) == (3, 2, 1)
    [q] = _quarantine_file(lake, "palo")
    assert (q["file"], q["row"], q["row_kind"]) == ("palo.json", 1, "index") and q["reason"].startswith(reason)


def test_element_that_never_closes_costs_the_rest_of_the_file_only(tmp_path):
    f = tmp_path / "llava.json"
    f.write_text("[\n" + json.dumps(_row(0)) + ",\n" + json.dumps(_row(1)) + ',\n{"id": "cut", "conversations": [\n'
                 + json.dumps(_row(3)) + ",\n" + json.dumps(_row(4)) + "\n]\n")
    r = _collect(read_conversations(f, "llava_instruct"))
    assert [k["id"] for k in r.kept] == ["r0", "r1"]
    q = _only(r)
    assert (q.file, q.row, q.row_kind) == ("llava.json", 2, "index")
    assert q.reason.startswith("malformed JSON: element 2 (line 4) never ends") and "rest of the file" in q.reason


def test_truncated_list_and_trailing_garbage_are_reported(tmp_path):
    f = tmp_path / "a.json"
    f.write_text("[" + json.dumps(_row(0)) + ",")
    q = _only(_collect(read_conversations(f, "palo")))
    assert q.reason.startswith("malformed JSON: the file ends without the list's closing ']'")
    f.write_text("[" + json.dumps(_row(0)) + "]\n,{oops")
    q = _only(_collect(read_conversations(f, "palo")))
    assert q.reason == "malformed JSON: data after the list's closing ']' at line 2"


# --- 5. limits and types -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("row, reason", [
    (_row(0, conversations=[CONV[0], CONV[1], CONV[0], {"from": "gpt", "value": "x" * 1_000_000}]),
     "too long: turn 3 has 1000000 characters (limit 20000, raw_limits.max_turn_chars)"),
    (_row(0, conversations=CONV * 33), "too many turns: 66 turns (limit 64, raw_limits.max_turns)"),
    (_row(0, conversations=[CONV[0], {"from": "gpt", "value": "  "}]), "empty turn: conversations[1] is empty"),
    (_row(0, image=7), "bad type: 'image' must be a string, got int"),
    (_row(0, image=["a.jpg"]), "bad type: 'image' must be a string, got list"),
    ({"id": 1.5, "conversations": CONV}, "bad type: 'id' must be a string or an integer, got float"),
    ({"id": True, "conversations": CONV}, "bad type: 'id' must be a string or an integer, got bool"),
    ({"id": "x", "conversations": "hi"}, "bad type: 'conversations' must be a list, got string"),
    ({"id": "x", "conversations": [CONV[0], "hi"]}, "bad type: conversations[1] must be an object, got string"),
    ({"id": "x", "conversations": [CONV[0], {"from": "gpt", "value": 3}]},
     "bad type: conversations[1].value must be a string, got int"),
    ({"id": "x", "conversations": [CONV[0], {"from": 1, "value": "a"}]},
     "bad turn: conversations[1].from must be one of ['gpt', 'human'], got 1"),
    ([1, 2], "bad type: a row must be an object, got list"),
])
def test_row_limits_and_types(tmp_path, row, reason):
    f = tmp_path / "c.jsonl"
    f.write_text(json.dumps(_row(1)) + "\n" + json.dumps(row) + "\n")
    r = _collect(read_conversations(f, "cambrian"))
    q = _only(r)
    assert (q.file, q.row, q.reason) == ("c.jsonl", 2, reason)
    assert len(r.kept) == 1


def test_null_image_is_text_only_and_limits_come_from_the_profile(tmp_path):
    f = tmp_path / "c.jsonl"
    f.write_text(json.dumps(_row(0, image=None)) + "\n" + json.dumps(_row(1)) + "\n")
    profile, lake = _profile(tmp_path, cambrian={"path": str(f), "image_root": None})
    profile = profile.model_copy(update={"raw_limits": RawLimits(max_turn_chars=20)})
    stats = ingest_source("cambrian", profile, lake, log=lambda _: None).stats
    assert stats.rows_kept == 0 and stats.reasons == {"too long": 2}  # "What colour is the square?" is 26
    profile = profile.model_copy(update={"raw_limits": RawLimits()})
    ingest_source("cambrian", profile, lake, log=lambda _: None)
    kept = read_parquet(lake.raw("cambrian") / "rows.parquet")
    assert sorted(r["id"] for r in kept) == ["r0", "r1"] and not any("image" in r for r in kept)


def test_oversized_line_and_element_are_skipped_unread(tmp_path):
    limits = RawLimits(max_row_bytes=4096)
    big = _row(1, conversations=[CONV[0], {"from": "gpt", "value": "x" * 10_000}])
    f = tmp_path / "c.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in (_row(0), big, _row(2))) + "\n")
    r = _collect(read_conversations(f, "cambrian", limits=limits))
    q = _only(r)
    assert (q.row, q.reason) == (2, "too long: line 2 has more than 4096 bytes (limit raw_limits.max_row_bytes)")
    g = tmp_path / "l.json"
    g.write_text(json.dumps([_row(0), big, _row(2)], indent=1))
    r = _collect(read_conversations(g, "llava_instruct", limits=limits))
    q = _only(r)
    assert q.row == 1 and q.reason.startswith("too long: element 1 (line ")
    assert [k["id"] for k in r.kept] == ["r0", "r2"]


def test_wit_caption_limit_and_parquet_types(tmp_path):
    lines = [_wit_line(0).encode(), _wit_line(1, caption_reference_description="y" * 2001).encode()]
    q = _only(_collect(read_wit(str(_wit_tsv(tmp_path / "w.tsv", lines)), ())))
    assert (q.row, q.reason) == (
        3, "too long: the caption has 2001 characters (limit 2000, raw_limits.max_caption_chars)")
    table = pa.table({"language": ["en", "en"], "page_url": ["https://a", "https://b"],
                      "image_url": pa.array([1, 2]), "caption_reference_description": ["a", "b"]})
    pq.write_table(table, tmp_path / "w.parquet")
    r = _collect(read_wit(str(tmp_path / "w.parquet"), ()))
    assert [(q.row, q.row_kind, q.reason) for q in r.quarantined] == [
        (0, "index", "bad type: 'image_url' must be a string, got int"),
        (1, "index", "bad type: 'image_url' must be a string, got int")]


def test_mmmu_types_are_checked(tmp_path):
    (tmp_path / "Art").mkdir()
    rows = {"id": ["validation_Art_1", "validation_Art_2"], "question": ["Which?", "Which?"],
            "options": ["['a', 'b']", "['a', 'b']"], "answer": pa.array([1, 2]),
            "question_type": ["multiple-choice", "multiple-choice"]}
    pq.write_table(pa.table(rows), tmp_path / "Art" / "validation-0.parquet")
    r = _collect(read_mmmu(str(tmp_path / "*" / "validation-*.parquet")))
    assert [(q.file, q.row, q.row_kind, q.reason) for q in r.quarantined] == [
        ("Art/validation-0.parquet", i, "index", "bad type: 'answer' must be a string, got int") for i in (0, 1)]


# --- 6. one convention for row numbers ----------------------------------------------------------------------------

def test_row_numbers_say_what_they_count(toy_lake, tmp_path):
    """JSONL, TSV and Flores rows are 1-based lines (a TSV's header is line 1); JSON-list elements and Parquet
    rows are 0-based indexes; the quarantine file says which."""
    profile, lake = toy_lake
    kinds = {}
    for name in ("llava_instruct", "cambrian", "wit", "flores", "xstorycloze", "mmmu"):
        ingest_source(name, profile, lake, log=lambda _: None)
        kinds[name] = {q["row_kind"] for q in _quarantine_file(lake, name)}
    assert kinds == {"llava_instruct": {"index"}, "cambrian": {"line"}, "wit": {"line"}, "flores": {"line"},
                     "xstorycloze": {"line"}, "mmmu": {"index"}}
    wit_lines = lake.toy_world("wit/wit_v1.train.tsv").read_text().splitlines()
    for q in _quarantine_file(lake, "wit"):
        assert wit_lines[q["row"] - 1].split("\t")[1] in q["raw"]  # the line a person opens


def test_bare_carriage_return_in_an_unquoted_field_costs_its_row(tmp_path):
    lines = [_wit_line(0).encode(), _wit_line(1, page_title="a\rb").encode(), _wit_line(2).encode()]
    r = _collect(read_wit(str(_wit_tsv(tmp_path / "w.tsv", lines)), ()))
    q = _only(r)
    assert (q.row, q.reason) == (3, "bad row: a carriage return (\\r) in a field that is not quoted")
    assert [k["page_title"] for k in r.kept] == ["P0", "P2"]


def test_many_malformed_elements_do_not_grow_the_buffer(monkeypatch):
    """Each malformed element is re-read alone; the text held stays about one chunk, not the file."""
    import io

    from pipeline.raw import files, jsonlist

    monkeypatch.setattr(files, "CHUNK", 256)
    held = []
    fill = jsonlist._Buffer.fill

    def watched(self, keep_from):
        more = fill(self, keep_from)
        held.append(len(self.text))
        return more

    monkeypatch.setattr(jsonlist._Buffer, "fill", watched)
    raw = ("[" + ", ".join('{"a": tru}' for _ in range(2000)) + ', {"a": 1}]').encode()
    got = list(jsonlist.iter_json_list(io.BytesIO(raw), "f", 1 << 20))
    assert len(got) == 2001 and got[-1][2] == {"a": 1}
    assert sum(1 for g in got if g[3] and g[3].startswith("malformed JSON: Expecting value")) == 2000
    assert max(held) < 2 * 256 + 20, f"the buffer grew to {max(held)} characters for a {len(raw)}-byte file"


def test_bad_lines_come_out_in_file_order_as_they_are_read(tmp_path):
    """A Latin-1 stretch of a TSV: each bad line is quarantined in its place, none piles up."""
    lines = [_wit_line(i, caption_reference_description=f"caf\xe9 {i}").encode("latin-1" if i % 3 else "utf-8")
             for i in range(3000)]
    stream = read_wit(str(_wit_tsv(tmp_path / "w.tsv", lines)), ())
    order = []
    for item in stream:
        order.append(item.row if hasattr(item, "row") else int(item["page_title"][1:]) + 2)
    assert order == list(range(2, 3002))  # line 1 is the header


def test_a_long_run_of_bad_lines_is_not_held(tmp_path, monkeypatch):
    from pipeline.raw import tables

    held = []
    flush = tables._flush
    monkeypatch.setattr(tables, "_flush", lambda feed: (held.append(len(feed.rejected)), flush(feed))[1])
    lines = [_wit_line(0).encode()] + [b"\xff" * 50] * 500 + [_wit_line(1).encode()]
    r = _collect(read_wit(str(_wit_tsv(tmp_path / "w.tsv", lines)), ()))
    assert len(r.kept) == 2 and len(r.quarantined) == 500 and max(held) == 1
