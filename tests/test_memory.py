"""Tests for pipeline.translation.memory, on real SQLite files (no mocks)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

import pytest

from pipeline.translation.memory import (
    Stats,
    TranslationMemory,
    decoding_fingerprint,
    mask_url,
    memory_url_for,
    normalise,
    segment_key,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL = "nllb-200-distilled-600M@ct2-int8-abc123"
DECODING = {"beam_size": 4, "max_decoding_length": 256, "length_penalty": 1.0}


@pytest.fixture
def url(tmp_path: Path) -> str:
    return memory_url_for(tmp_path / "nested" / "tm.sqlite")


@pytest.fixture
def tm(url: str):
    with TranslationMemory(url, MODEL, DECODING) as memory:
        yield memory


def _run_python(code: str, *args: str, **popen_kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], cwd=REPO_ROOT, env=env, text=True, **popen_kwargs
    )


# --------------------------------------------------------------------------- keys


def test_normalise_and_keys():
    decomposed = unicodedata.normalize("NFD", "Café  au\tlait\n")
    assert normalise(decomposed) == "Café au lait"
    assert normalise("  A  Dog ") == "A Dog"  # case kept
    assert segment_key(decomposed) == segment_key("Café au lait")
    assert segment_key("a dog") != segment_key("A dog")
    assert len(segment_key("x")) == 64


def test_decoding_fingerprint_is_stable_and_order_independent():
    a = decoding_fingerprint({"beam_size": 4, "length_penalty": 1.0})
    b = decoding_fingerprint({"length_penalty": 1.0, "beam_size": 4})
    assert a == b and len(a) == 16
    assert decoding_fingerprint({"beam_size": 5, "length_penalty": 1.0}) != a


# --------------------------------------------------------------------------- behaviour


def test_put_then_get(tm: TranslationMemory, url: str):
    assert tm.put_many([("A dog on a beach.", "fra_Latn", "Un chien sur une plage.")]) == 1
    assert tm.get_many(["A dog on a beach."], "fra_Latn") == {"A dog on a beach.": "Un chien sur une plage."}
    # whitespace / NFC variants hit, and are returned under the input string as given
    variants = ["  A dog\ton a   beach. ", unicodedata.normalize("NFD", "A dog on a beach.")]
    assert tm.get_many(variants + ["unknown"], "fra_Latn") == {v: "Un chien sur une plage." for v in variants}
    # another target language misses
    assert tm.get_many(["A dog on a beach."], "deu_Latn") == {}
    # another model fingerprint or other decoding settings miss
    with TranslationMemory(url, MODEL + "-v2", DECODING) as other_model:
        assert other_model.get_many(["A dog on a beach."], "fra_Latn") == {}
    with TranslationMemory(url, MODEL, {**DECODING, "beam_size": 2}) as other_decoding:
        assert other_decoding.decoding_key != tm.decoding_key
        assert other_decoding.get_many(["A dog on a beach."], "fra_Latn") == {}
    assert tm.count() == 1 and tm.count("fra_Latn") == 1 and tm.count("deu_Latn") == 0


def test_put_many_is_idempotent_first_translation_wins(tm: TranslationMemory):
    assert tm.put_many([("a cat", "spa_Latn", "un gato"), ("a cat ", "spa_Latn", "un gatito")]) == 1
    assert tm.put_many([("a cat", "spa_Latn", "otra cosa")]) == 0
    assert tm.put_many([]) == 0
    assert tm.get_many(["a cat"], "spa_Latn") == {"a cat": "un gato"}
    assert tm.count() == 1


def test_many_segments_are_chunked(tm: TranslationMemory):
    segments = [f"segment number {i}" for i in range(1200)]
    assert tm.put_many((s, "hin_Deva", s.upper()) for s in segments) == 1200
    got = tm.get_many(segments + ["missing"], "hin_Deva")
    assert len(got) == 1200 and got["segment number 777"] == "SEGMENT NUMBER 777"


def test_stats(tm: TranslationMemory):
    assert tm.stats() == Stats(lookups=0, hits=0, writes=0)
    tm.put_many([("one", "fra_Latn", "un"), ("two", "fra_Latn", "deux")])
    tm.put_many([("one", "fra_Latn", "UN")])
    tm.get_many(["one", "two", "three"], "fra_Latn")
    assert tm.stats() == Stats(lookups=3, hits=2, writes=2)


def test_durable_across_instances(url: str):
    with TranslationMemory(url, MODEL, DECODING) as first:
        first.put_many([("hello", "zho_Hans", "你好")])
    with TranslationMemory(url, MODEL, DECODING) as second:
        assert second.get_many(["hello"], "zho_Hans") == {"hello": "你好"}
        assert second.stats().writes == 0


def test_sqlite_settings(tm: TranslationMemory, url: str, tmp_path: Path):
    assert (tmp_path / "nested" / "tm.sqlite").exists()  # parent folder created
    with tm._engine.connect() as conn:  # noqa: SLF001 - checking the connection setup
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    assert tm.url == url and tm.model_fingerprint == MODEL
    tm.close()
    with pytest.raises(RuntimeError, match="closed"):
        tm.get_many(["x"], "fra_Latn")


# --------------------------------------------------------------------------- processes

_WRITER = """
import sys, time
from pipeline.translation.memory import TranslationMemory
url, start, stop, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
tm = TranslationMemory(url, "m", {"beam_size": 4})
time.sleep(max(0.0, go - time.time()))  # start writing together
new = 0
for i in range(start, stop, 25):
    keys = range(i, min(i + 25, stop))
    new += tm.put_many((f"segment {k}", lang, f"{lang} {k}") for k in keys for lang in ("fra_Latn", "deu_Latn"))
    tm.get_many([f"segment {k}" for k in keys], "fra_Latn")
print(new)
"""


def test_two_processes_write_overlapping_keys(tmp_path: Path):
    url = memory_url_for(tmp_path / "shared.sqlite")  # not created yet: both race to create it
    go = f"{time.time() + 1.5:.3f}"
    procs = [
        _run_python(_WRITER, url, "0", "1500", go, stdout=subprocess.PIPE, stderr=subprocess.PIPE),
        _run_python(_WRITER, url, "750", "2250", go, stdout=subprocess.PIPE, stderr=subprocess.PIPE),
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
    distinct = 2250 * 2  # keys 0..2249, two languages each
    assert sum(int(out) for out, _ in outputs) == distinct  # every row inserted exactly once
    with TranslationMemory(url, "m", {"beam_size": 4}) as tm:
        assert tm.count() == distinct
        assert tm.count("deu_Latn") == 2250
        assert tm.get_many(["segment 1000"], "deu_Latn") == {"segment 1000": "deu_Latn 1000"}


_STREAMER = """
import sys
from pipeline.translation.memory import TranslationMemory
tm = TranslationMemory(sys.argv[1], "m", {})
batch = 0
while True:
    tm.put_many((f"batch {batch} row {r}", "fra_Latn", "x" * 200) for r in range(50))
    print(batch, flush=True)
    batch += 1
"""


def test_sigkill_keeps_every_returned_batch(tmp_path: Path):
    path = tmp_path / "crash.sqlite"
    url = memory_url_for(path)
    proc = _run_python(_STREAMER, url, stdout=subprocess.PIPE, bufsize=1)
    reported: list[int] = []
    try:
        for line in proc.stdout:
            reported.append(int(line))
            if len(reported) >= 40:
                break
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: the child is already writing the next batch
        reported += [int(line) for line in proc.stdout.read().split()]
    finally:
        proc.kill()
        proc.wait(timeout=10)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert len(reported) >= 40

    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with TranslationMemory(url, "m", {}) as tm:
        for batch in reported:
            segments = [f"batch {batch} row {r}" for r in range(50)]
            assert len(tm.get_many(segments, "fra_Latn")) == 50, f"batch {batch} lost"
        # each batch is one transaction: the one in flight at the kill is all or nothing
        total = tm.count()
        assert total % 50 == 0 and total // 50 in (len(reported), len(reported) + 1)
        assert tm.put_many([("after the crash", "fra_Latn", "après")]) == 1


# --------------------------------------------------------------------------- errors


def test_mask_url():
    assert mask_url("postgresql+psycopg://user:secret@db.example:5432/tm") == (
        "postgresql+psycopg://user:***@db.example:5432/tm"
    )
    assert "secret" not in mask_url("::garbage:secret@host")
    assert mask_url("sqlite:////data/tm.sqlite") == "sqlite:////data/tm.sqlite"


@pytest.mark.parametrize(
    "bad, error",
    [
        ("postgresql+psycopg://user:secret@127.0.0.1:1/db?connect_timeout=2", RuntimeError),
        ("mysql://user:secret@127.0.0.1/db", ValueError),
        ("postgresql+nosuchdriver://user:secret@127.0.0.1/db", ValueError),
        ("postgresql+asyncpg://user:secret@127.0.0.1/db", ValueError),
        ("not a url user:secret@host", ValueError),
    ],
)
def test_bad_or_unreachable_url_is_clear_and_masked(bad: str, error: type[Exception]):
    with pytest.raises(error) as info:
        TranslationMemory(bad, MODEL, DECODING)
    message = str(info.value)
    assert "secret" not in message and "secret" not in repr(info.value)
    assert "***" in message  # names the URL, password masked
    if bad.startswith("postgresql+psycopg:"):
        # no server listens on port 1; if psycopg is missing the message says what to install
        assert "psycopg" in message and ("pip install" in message or "reachable" in message)


def test_unwritable_sqlite_path_is_clear(tmp_path: Path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(RuntimeError, match="a_file"):
        TranslationMemory(memory_url_for(blocker / "tm.sqlite"), MODEL, DECODING)


def test_memory_url_for(tmp_path: Path):
    assert memory_url_for(tmp_path / "tm.sqlite") == f"sqlite:///{tmp_path / 'tm.sqlite'}"
    with pytest.raises(ValueError):
        memory_url_for("s3://bucket/tm.sqlite")
