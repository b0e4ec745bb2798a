"""Random bytes and random JSON values into every reader: a reader raises nothing but `SourceError`, every
row read is kept or quarantined, and what it keeps and quarantines can be written to the lake."""
from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pipeline.config import RawLimits
from pipeline.raw.accounting import SourceError, collect
from pipeline.raw.conversations import read_conversations
from pipeline.raw.flores import read_flores
from pipeline.raw.mmmu import read_mmmu
from pipeline.raw.sources import SOURCES
from pipeline.raw.wit import read_wit
from pipeline.raw.xstorycloze import COLUMNS as STORY_COLUMNS, read_xstorycloze
from pipeline.rows import write_parquet
from tests.test_raw_hardening import WIT_COLUMNS

pytestmark = pytest.mark.timeout(120)
# modest by default, so the suite stays fast; FUZZ_EXAMPLES=2000 for a deeper run
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 50)), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
LIMITS = RawLimits(max_row_bytes=4096, max_turn_chars=200, max_turns=6, max_caption_chars=100, max_field_chars=200)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
turns = st.fixed_dictionaries({"from": st.sampled_from(["human", "gpt", "system"]),
                               "value": st.text(max_size=40) | json_values})
words = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40).filter(str.strip)
good_rows = st.builds(
    lambda i, turns, image: {"id": f"r{i}", "conversations": [{"from": r, "value": v} for r, v in turns], **image},
    st.integers(0, 10**6),
    st.lists(st.tuples(st.just("human"), words), min_size=1, max_size=2).map(
        lambda t: [x for pair in t for x in (pair, ("gpt", pair[1]))]),
    st.sampled_from([{}, {"image": ""}, {"image": None}, {"image": "nan"}]))
rows = st.one_of(
    good_rows,
    json_values,
    st.fixed_dictionaries({"id": st.text(max_size=6) | st.integers() | json_values,
                           "conversations": st.lists(turns, max_size=8) | json_values},
                          optional={"image": st.sampled_from(["", "None", "nan", "a.jpg", "../x"]) | json_values}),
)


def _mutate(data: bytes, draw) -> bytes:
    """A valid serialisation, cut short, or with random bytes spliced in."""
    kind = draw(st.sampled_from(["as is", "cut", "splice"]))
    if kind == "as is" or not data:
        return data
    at = draw(st.integers(0, len(data)))
    if kind == "cut":
        return data[:at]
    return data[:at] + draw(st.binary(min_size=1, max_size=6)) + data[at:]


def _written(result, source: str) -> None:
    """What ingest would do with the stream: every record written to quarantine.jsonl, kept rows to Parquet."""
    assert result.read == len(result.kept) + len(result.quarantined)
    if result.kept:
        event(f"{source}: some rows kept")  # --hypothesis-show-statistics shows what the inputs reached
    for q in result.quarantined:
        event(f"{source}: {q.kind}")
        assert q.reason and q.row_kind in ("line", "index")
        json.dumps(q.to_dict(), ensure_ascii=False).encode("utf-8")
    spec = SOURCES[source]
    with tempfile.TemporaryDirectory() as tmp:
        n = write_parquet(Path(tmp) / "rows.parquet", iter(result.kept), row_id=spec.row_id,
                          documents=spec.layout == "documents")
    assert n == len(result.kept)


def _read(make_stream, source: str) -> None:
    try:
        result = collect(make_stream())
    except SourceError as e:
        event(f"{source}: SourceError {str(e).split(' ')[1][:20]}")
        return
    _written(result, source)


@FUZZ
@given(data=st.data(), values=st.lists(rows, max_size=8), as_list=st.booleans())
def test_conversation_files(data, values, as_list):
    if as_list:
        raw = json.dumps(values, indent=data.draw(st.sampled_from([None, 1]))).encode()
    else:
        raw = b"\n".join(json.dumps(v).encode() for v in values)
    raw = _mutate(raw, data.draw)
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / ("c.json" if as_list else "c.jsonl")
        f.write_bytes(raw)
        _read(lambda: read_conversations(f, "cambrian", tmp, limits=LIMITS), "cambrian")


@FUZZ
@given(values=st.lists(good_rows, max_size=8, unique_by=lambda r: r["id"]), indent=st.sampled_from([None, 0, 2]),
       as_list=st.booleans())
def test_good_conversations_come_back_as_written(values, indent, as_list):
    if as_list:
        raw = json.dumps(values, indent=indent, ensure_ascii=False)
    else:
        raw = "".join(json.dumps(v, ensure_ascii=indent is None) + "\n" for v in values)
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "c.jsonl"
        f.write_text(raw, encoding="utf-8")
        result = collect(read_conversations(f, "cambrian", limits=RawLimits()))
    assert not result.quarantined
    assert result.kept == [{k: v for k, v in r.items() if k != "image"} for r in values]


@FUZZ
@given(raw=st.binary(max_size=600))
def test_conversation_files_of_random_bytes(raw):
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("c.json", "c.jsonl"):
            f = Path(tmp) / name
            f.write_bytes(raw)
            _read(lambda: read_conversations(f, "palo", limits=LIMITS), "palo")
            f.write_bytes(b"[" + raw)  # the list reader, whatever follows
            _read(lambda: read_conversations(f, "palo", limits=LIMITS), "palo")


field_text = st.text(st.characters(codec="utf-8"), max_size=30) | st.sampled_from(["en", "fr", "xx", "http://a/b"])
wit_rows = st.builds(
    lambda lang, url, title, caption: {"language": lang, "page_url": "https://w/" + title, "image_url": url,
                                       "page_title": title, "section_title": "", "mime_type": "image/jpeg",
                                       "caption_reference_description": caption, "caption_attribution_description": ""},
    st.sampled_from(["en", "fr"]), st.sampled_from(["https://u/a.jpg", "http://u/b.png"]),
    st.text(st.characters(codec="utf-8", exclude_characters="\r"), max_size=30),
    words.filter(lambda t: "\r" not in t))


@FUZZ
@given(table=st.lists(wit_rows, max_size=6))
def test_good_wit_rows_come_back_as_written(table):
    """Written as pandas writes a TSV (fields quoted when they hold tabs, quotes or newlines; a bare '\\r' is
    left unquoted by Python's csv writer, and no parser reads it back, so the rows here hold none)."""
    import csv

    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, WIT_COLUMNS, delimiter="\t", lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "wit.tsv"
        f.write_bytes(buf.getvalue().encode("utf-8"))
        result = collect(read_wit(str(f), ("fra_Latn",)))
    assert not result.quarantined
    assert [{c: r[c] for c in WIT_COLUMNS} for r in result.kept] == table
    assert [r["caption"] for r in result.kept] == [r["caption_reference_description"].strip() for r in table]


@FUZZ
@given(data=st.data(), table=st.lists(st.lists(field_text, min_size=6, max_size=10) |
                                      wit_rows.map(lambda r: [r[c] for c in WIT_COLUMNS]), max_size=6))
def test_wit_tsv(data, table):
    body = "\n".join(["\t".join(WIT_COLUMNS), *("\t".join(r) for r in table)]).encode()
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "wit.tsv"
        f.write_bytes(_mutate(body, data.draw))
        _read(lambda: read_wit(str(f), ("fra_Latn",), LIMITS), "wit")


@FUZZ
@given(data=st.data(), table=st.lists(st.lists(field_text | st.sampled_from(["1", "2"]), min_size=7, max_size=9),
                                      max_size=6))
def test_xstorycloze_tsv(data, table):
    body = "\n".join(["\t".join(STORY_COLUMNS), *("\t".join(r) for r in table)]).encode()
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "xstorycloze.fra_Latn.eval.tsv"
        f.write_bytes(_mutate(body, data.draw))
        _read(lambda: read_xstorycloze(str(Path(tmp) / "xstorycloze.*.tsv"), LIMITS), "xstorycloze")


@FUZZ
@given(eng=st.binary(max_size=300), fra=st.binary(max_size=300), aligned=st.booleans())
def test_flores_files(eng, fra, aligned):
    if aligned:  # the same number of lines, random content: the rows are read
        eng_lines = eng.split(b"\n")
        fra_lines = (fra.split(b"\n") + [b""] * len(eng_lines))[:len(eng_lines)]
        fra_lines[-1] = (fra_lines[-1] or b"x") if eng_lines[-1] else b""
        fra = b"\n".join(fra_lines)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "eng_Latn.devtest").write_bytes(eng)
        (Path(tmp) / "fra_Latn.devtest").write_bytes(fra)
        _read(lambda: read_flores(tmp, "devtest", ("fra_Latn",), LIMITS), "flores")


def _column(values, kind):
    if kind == "string":
        return pa.array([v if v is None else str(v) for v in values], pa.string())
    return pa.array([v if isinstance(v, int) and not isinstance(v, bool) and abs(v) < 2**62 else None
                     for v in values], pa.int64())


@FUZZ
@given(data=st.data(), n=st.integers(0, 5))
def test_mmmu_parquet_from_random_values(data, n):
    values = st.none() | st.integers() | st.text(max_size=20) | st.sampled_from(
        ["<image 1> Which?", "Which?", "['a', 'b']", "[]", "A", "multiple-choice", "open", "validation_Art_1"])
    columns = {}
    for name in ("id", "question", "options", "answer", "question_type", "explanation"):
        if data.draw(st.integers(0, 40)) == 0:
            continue  # a column missing: SourceError
        kind = data.draw(st.sampled_from(["string", "string", "string", "int"]))
        columns[name] = _column(data.draw(st.lists(values, min_size=n, max_size=n)), kind)
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    columns["image_1"] = pa.array(data.draw(st.lists(
        st.none() | st.fixed_dictionaries({"bytes": st.binary(max_size=40) | st.none(), "path": st.none()}),
        min_size=n, max_size=n)), image)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "Art").mkdir()
        pq.write_table(pa.table(columns), Path(tmp) / "Art" / "validation-0.parquet")
        _read(lambda: read_mmmu(str(Path(tmp) / "*" / "validation-*.parquet"), LIMITS), "mmmu")


@FUZZ
@given(raw=st.binary(max_size=400))
def test_parquet_readers_given_random_bytes(raw):
    buf = io.BytesIO()
    pq.write_table(pa.table({"language": ["en"], "page_url": ["https://a"], "image_url": ["https://b"],
                             "caption_reference_description": ["c"]}), buf)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "Art").mkdir()
        for content in (raw, buf.getvalue()[: len(raw)] + raw):
            (Path(tmp) / "Art" / "validation-0.parquet").write_bytes(content)
            (Path(tmp) / "w.parquet").write_bytes(content)
            _read(lambda: read_mmmu(str(Path(tmp) / "*" / "validation-*.parquet"), LIMITS), "mmmu")
            _read(lambda: read_wit(str(Path(tmp) / "w.parquet"), (), LIMITS), "wit")


@FUZZ
@given(raw=st.binary(max_size=300) | st.lists(st.sampled_from([b"ab", b"\n", b"\r\n", b"xyz" * 5, b"\xff"]),
                                               max_size=30).map(b"".join),
       chunk=st.integers(1, 16), max_bytes=st.integers(1, 20))
def test_lines_split_the_same_whatever_the_chunk_size(raw, chunk, max_bytes):
    from pipeline.raw import files

    expected = raw.split(b"\n")
    if expected[-1] == b"":
        expected.pop()
    expected = [line if len(line) <= max_bytes else None for line in expected]
    old, files.CHUNK = files.CHUNK, chunk
    try:
        got = list(files.iter_lines(io.BytesIO(raw), "f", max_bytes))
    finally:
        files.CHUNK = old
    assert got == list(enumerate(expected, start=1))


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


@FUZZ
@given(values=st.lists(json_values, max_size=6), indent=st.sampled_from([None, 0, 2]),
       ascii_only=st.booleans(), chunk=st.integers(1, 64))
def test_json_list_elements_are_the_values_whatever_the_chunk_size(values, indent, ascii_only, chunk):
    """Chunk boundaries fall anywhere: inside strings, numbers, escapes and multi-byte characters."""
    from pipeline.raw import files
    from pipeline.raw.jsonlist import iter_json_list

    raw = json.dumps(values, indent=indent, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    old, files.CHUNK = files.CHUNK, chunk
    try:
        got = list(iter_json_list(io.BytesIO(raw), "f", 1 << 20))
    finally:
        files.CHUNK = old
    assert [i for i, *_ in got] == list(range(len(values)))
    surrogates = [not ascii_only and not _utf8(json.dumps(v, ensure_ascii=False)) for v in values]
    for (i, line, value, problem, _), want, bad in zip(got, values, surrogates):
        if bad:  # a lone surrogate written raw is not UTF-8: the element is quarantined, the rest read
            assert problem.startswith("bad encoding")
        else:
            assert problem is None and json.dumps(value) == json.dumps(want)
            assert json.dumps(json.loads(_)) == json.dumps(want)  # the raw text is the element's own


@FUZZ
@given(values=st.lists(json_values, min_size=1, max_size=6), indent=st.sampled_from([None, 1]),
       chunk=st.integers(1, 64), data=st.data())
def test_a_cut_json_list_keeps_the_whole_elements_before_the_cut(values, indent, chunk, data):
    from pipeline.raw import files
    from pipeline.raw.jsonlist import iter_json_list

    text = json.dumps(values, indent=indent)
    cut = data.draw(st.integers(1, len(text) - 1))
    old, files.CHUNK = files.CHUNK, chunk
    try:
        got = list(iter_json_list(io.BytesIO(text[:cut].encode()), "f", 1 << 20))
    finally:
        files.CHUNK = old
    assert got, "a cut list is reported, never silently empty"
    *whole, last = got
    for (i, _, value, problem, raw), want in zip(whole, values):
        assert problem is None and json.dumps(value) == json.dumps(want)
    assert last[3] is not None or json.dumps(last[2]) == json.dumps(values[last[0]])
    if last[3] is not None:
        raw = last[4]
        assert last[3].startswith("malformed JSON") and raw in text[:cut]
        if raw and len(raw) < 500:  # the unfinished element, from its first character to the cut
            assert text[:cut].endswith(raw) and text[:cut - len(raw)].rstrip()[-1] in "[,"
        assert len(got) <= len(values) + 1
