"""The translation memory on a real PostgreSQL server, as many translation pods share it on a cluster.

Two `python -m pipeline.translation` processes translate the same partition at the same time against
one database; one of them is killed with SIGKILL mid-run. Afterwards the memory holds exactly the unique
sentences (none lost, none stored twice), no process sent the model a sentence the memory already had
when it looked, and a further run makes zero model calls.

Needs a server: MMG4_TEST_POSTGRES_URL (`.ci/run` starts one); without it every test here skips.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from multiprocessing import get_context
from pathlib import Path

import pytest
import yaml

from pipeline.rows import read_rows
from pipeline.stats import StepStats
from pipeline.translation.datasets import DATASETS, partition_folder
from pipeline.translation.memory import TranslationMemory
from pipeline.translation.run import Engines, translate_texts
from pipeline.translation.segment import segment
from tests import services

# The toy lake with the translated sources and a tiny converted NLLB: the translation tests' own fixture,
# imported here (one place to change if it moves).
from tests.test_translation import world  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
DATASET = "llava_instruct"  # chunked in the toy profile: partitions are (chunk, language)


@pytest.fixture(scope="module", autouse=True)
def server() -> str:
    """The server's URL; without one, skip before the toy lake and model are built."""
    return services.postgres_url()


@pytest.fixture
def pg_url(server):
    with services.fresh_database(server) as url:
        yield url


def _profile_file(profile, lake, memory_url: str, folder: Path) -> Path:
    """The test profile as a YAML file whose translation memory is the PostgreSQL database."""
    data = profile.model_dump(mode="json")
    data["lake_root"] = str(lake.root)
    data["translation"]["memory_url"] = memory_url
    path = folder / "profile.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _unique_sentences(lake, chunk: int, n_chunks: int) -> list[str]:
    spec = DATASETS[DATASET]
    texts = [t for row in spec.load(lake, chunk, n_chunks) for t in spec.texts(row)]
    return list(dict.fromkeys(s.text for t in texts for s in segment(t) if s.translate))


# The CLI's own main(), in a process that first imports everything and then waits for a line on stdin:
# so that two processes really translate at the same time (Python start-up would otherwise dwarf the
# few seconds of translating).
_WAITING_MAIN = ("import sys; from pipeline.translation.__main__ import main; "
                 "print('ready', file=sys.stderr, flush=True); sys.stdin.readline(); sys.exit(main(sys.argv[1:]))")


def _cli(profile_path: Path, lake, lang: str, chunk: int, batch_tokens: int = 16) -> subprocess.Popen:
    env = {**os.environ, "MMG4_CONFIG": str(profile_path), "PYTHONUNBUFFERED": "1"}
    args = ["translate", "--dataset", DATASET, "--lang", lang, "--chunk", str(chunk), "--lake", str(lake.root),
            "--batch-tokens", str(batch_tokens)]
    return subprocess.Popen([sys.executable, "-c", _WAITING_MAIN, *args], cwd=ROOT, env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _start_together(*procs: subprocess.Popen) -> None:
    for p in procs:
        line = p.stderr.readline()
        assert line.strip() == "ready", f"translation process did not start: {line}{p.stderr.read()[-2000:]}"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()


def _stats(proc: subprocess.Popen, timeout: float = 300) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"translation process failed ({proc.returncode}):\n{err[-3000:]}"
    return json.loads(out.strip().splitlines()[-1])


def _rows_in_memory(url: str, lang: str) -> tuple[int, int]:
    """(rows, distinct keys) stored for `lang`, counted with plain SQL."""
    [(rows, keys)] = services.sql(
        url, f"SELECT count(*), count(DISTINCT (model, decoding, src_hash)) FROM tm WHERE tgt_lang = '{lang}'")
    return rows, keys


# --------------------------------------------------------------------------- the memory itself


def _put_in_order(url: str, pairs: list, start_at: float) -> int:
    with TranslationMemory(url, "m@1", {"beam_size": 1}) as tm:
        time.sleep(max(0.0, start_at - time.time()))
        return tm.put_many(pairs)


def test_postgres_memory_first_writer_wins_and_racing_writers_store_each_key_once(pg_url):
    with TranslationMemory(pg_url, "m@1", {"beam_size": 1}) as tm:
        tm.put_many([("A red circle.", "fra_Latn", "Un cercle rouge.")])
        tm.put_many([("A  red circle. ", "fra_Latn", "autre")])  # the same key: the first one wins
        assert tm.get_many(["A red circle."], "fra_Latn") == {"A red circle.": "Un cercle rouge."}
    # two processes store the same 600 keys at the same moment, in the same order (as two pods on one
    # partition do): every key is stored once
    pairs = [(f"Sentence number {i}.", "kor_Hang", f"문장 {i}") for i in range(600)]
    start_at = time.time() + 1.0
    with get_context("spawn").Pool(2) as pool:
        pool.starmap(_put_in_order, [(pg_url, pairs, start_at), (pg_url, pairs, start_at)])
    assert _rows_in_memory(pg_url, "kor_Hang") == (600, 600)


def test_postgres_put_many_counts_new_rows(pg_url):
    with TranslationMemory(pg_url, "m@1", {"beam_size": 1}) as tm:
        assert tm.put_many([(f"Row {i}.", "fra_Latn", f"Ligne {i}.") for i in range(10)]) == 10
        assert tm.stats().writes == 10


def _put_rounds(url: str, rounds: list, reverse: bool, start_times: list) -> list[str]:
    errors = []
    with TranslationMemory(url, "m@1", {"beam_size": 1}) as tm:
        for pairs, start_at in zip(rounds, start_times):
            time.sleep(max(0.0, start_at - time.time()))
            try:
                tm.put_many(pairs[::-1] if reverse else pairs)
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(type(getattr(exc, "orig", exc)).__name__)
    return errors


def test_postgres_writers_with_overlapping_keys_in_any_order_never_deadlock(pg_url):
    # pods translating different datasets store shared sentences in different orders at the same time
    rounds = [[(f"Round {r} sentence {i}.", "hin_Deva", f"{r}-{i}") for i in range(2000)] for r in range(4)]
    starts = [time.time() + 2.0 + 1.5 * r for r in range(4)]
    with get_context("spawn").Pool(2) as pool:
        errors = pool.starmap(_put_rounds, [(pg_url, rounds, False, starts), (pg_url, rounds, True, starts)])
    assert errors == [[], []]
    assert _rows_in_memory(pg_url, "hin_Deva") == (8000, 8000)


# --------------------------------------------------------------------------- two translating processes


def test_two_processes_translate_one_partition_at_once(world, pg_url, tmp_path):  # noqa: F811
    profile, lake = world
    lang, n = "fra_Latn", profile.translation.chunk_count(DATASET)
    assert n > 1, "the toy profile splits llava_instruct into chunks"
    path = _profile_file(profile, lake, pg_url, tmp_path)
    # the memory already knows half of the partition's sentences (another dataset shared them)
    engines = Engines(profile.translation.model_copy(update={"memory_url": pg_url}), lake)
    unique0 = _unique_sentences(lake, 0, n)
    with engines.memory() as memory:
        translate_texts(unique0[::2], lang, engines.translator(), memory, StepStats("seed"), log=lambda _: None)
        known_before = len(memory.get_many(unique0, lang))
    assert 0 < known_before < len(unique0), "some of the partition is in the memory, some is not"

    a, b = _cli(path, lake, lang, 0), _cli(path, lake, lang, 0)
    _start_together(a, b)  # the same partition, at once
    sa, sb = _stats(a), _stats(b)
    for s in (sa, sb):
        assert s["segments_unique"] == len(unique0)
        assert s["cache_hits"] + s["model_calls"] == len(unique0), "every sentence came from memory or model"
        assert s["cache_hits"] >= known_before, "what the memory had was never sent to the model"
    assert _rows_in_memory(pg_url, lang) == (len(unique0), len(unique0)), "exactly the unique sentences, once"

    # the written partition would be reused as it is: remove it, so the third run goes to the memory
    (partition_folder(lake, DATASET, lang, 0, n) / "manifest.json").unlink()
    third = _cli(path, lake, lang, 0)
    _start_together(third)
    third = _stats(third)
    assert third["model_calls"] == 0 and third["cache_hits"] == len(unique0)
    rows = read_rows(partition_folder(lake, DATASET, lang, 0, n))
    assert [r["id"] for r in rows] == [r["id"] for r in DATASETS[DATASET].load(lake, 0, n)]
    assert all(r["lang"] == lang for r in rows)


def test_killed_process_beside_a_running_one_then_rerun_without_duplicates(world, pg_url, tmp_path):  # noqa: F811
    profile, lake = world
    lang, n = "ben_Beng", profile.translation.chunk_count(DATASET)
    path = _profile_file(profile, lake, pg_url, tmp_path)
    unique0 = _unique_sentences(lake, 0, n)

    victim, other = _cli(path, lake, lang, 0, batch_tokens=8), _cli(path, lake, lang, 0, batch_tokens=8)
    _start_together(victim, other)
    stored, seen = 0, []
    for line in victim.stderr:
        seen.append(line)
        if "translated " in line and "/" in line:
            stored = int(line.split("translated ")[1].split("/")[0])
            if stored >= 4:
                victim.send_signal(signal.SIGKILL)  # mid-run: between or inside a batch's transaction
                break
    victim.wait()
    victim.stdout.close()
    victim.stderr.close()
    assert victim.returncode == -signal.SIGKILL, f"finished before it could be killed: {seen[-5:]}"
    survivor = _stats(other)
    assert survivor["cache_hits"] + survivor["model_calls"] == len(unique0)

    (partition_folder(lake, DATASET, lang, 0, n) / "manifest.json").unlink()  # else reused without the memory
    rerun = _cli(path, lake, lang, 0)
    _start_together(rerun)
    rerun = _stats(rerun)
    assert rerun["model_calls"] == 0, "the survivor stored every sentence; the re-run only reads"
    assert rerun["cache_hits"] == len(unique0)
    assert _rows_in_memory(pg_url, lang) == (len(unique0), len(unique0)), "none lost, none stored twice"
    # nothing of the killed run's connection is left holding locks or a transaction open
    idle = services.sql(pg_url, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                "AND state LIKE 'idle in transaction%'")
    assert idle == [(0,)]
    rows = read_rows(partition_folder(lake, DATASET, lang, 0, n))
    assert len(rows) == len(DATASETS[DATASET].load(lake, 0, n)) and all(r["lang"] == lang for r in rows)
