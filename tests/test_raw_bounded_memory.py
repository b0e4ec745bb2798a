"""The raw step reads a source much larger than the memory it may use.

A ~60 MB JSONL file and a ~60 MB JSON list (60,000 LLaVA-format rows, with a few bad rows planted) are
ingested in a subprocess whose address space is capped with `resource.setrlimit(RLIMIT_AS)`.

How the cap was found (2-core x86-64 machine, Python 3.11, pyarrow 26): once the raw step is imported
(pandas, pyarrow, PIL, upath) the process maps ~300 MB of address space (296 MB measured); ingesting
either file in a stream then adds ~27 MB at its peak; loading it whole the way the readers did before
streaming (the text read at once, every row kept in a list) adds ~366 MB, before any write. So the cap
is "what the process maps once imported, plus BUDGET_MB = 150": well under half of what a whole load
needs, over five times what the stream uses. Measured on the address space rather than resident memory,
allocators' reservations count too, so the subprocess uses one malloc arena and Arrow's system allocator
(jemalloc/mimalloc reserve ~1 GB of address space that they never touch). The same process then tries
the whole load and must hit MemoryError: the cap is below what that needs.

One variant writes the rows with a streaming stand-in (Parquet batches of 1024 rows), which isolates the
readers: reader, checks, quarantine file and stand-in together peak at ~20 MB over the imports. The
other uses the real `pipeline.rows.write_parquet` (budget REAL_WRITER_BUDGET_MB: it holds up to
MEMORY_ROWS rows before spilling to disk by bucket range).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
ROOT = Path(__file__).resolve().parent.parent
BUDGET_MB = 150
REAL_WRITER_BUDGET_MB = 200  # room for a writer that buffers a few 8192-row groups; still < a whole load
N_ROWS = 60_000
BAD = 3  # planted: a bad byte, a malformed row, a lone surrogate

_SCRIPT = r"""
import itertools, json, resource, sys
import pyarrow as pa, pyarrow.parquet as pq
from pipeline.config import load_profile
from pipeline.lake import Lake, atomic_open
from pipeline.raw import ingest

path, lake_root, budget_mb, real_writer = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "real"

def vm_kb(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key))

def streaming_write(path, rows, row_id, documents):
    schema = pa.schema([("id", pa.string()), ("_json", pa.string())])
    n = 0
    with atomic_open(path, "wb") as f, pq.ParquetWriter(f, schema) as w:
        while batch := list(itertools.islice(rows, 1024)):
            w.write_table(pa.table({"id": [row_id(r) for r in batch],
                                    "_json": [json.dumps(r, ensure_ascii=False) for r in batch]}, schema=schema))
            n += len(batch)
    return n

if not real_writer:
    ingest.write_parquet = streaming_write
base = load_profile("configs/toy.yaml")
src = base.sources.cambrian.model_copy(update={"path": path, "image_root": None})
profile = base.model_copy(update={"lake_root": lake_root,
                                  "sources": base.sources.model_copy(update={"cambrian": src})})
lake = Lake.at(lake_root)
json.loads("[1]")  # everything the run needs is imported before the cap is set
imported = vm_kb("VmSize") * 1024
cap = imported + budget_mb * 2**20
if len(sys.argv) <= 5:
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

def load_whole():
    # the control: what the readers did before streaming: the file read whole, every row kept in a list
    # (rows are one per line in both files; the planted bad ones are skipped)
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    rows = []
    for line in text.splitlines():
        try:
            rows.append(json.loads(line.rstrip(",")))
        except ValueError:
            pass
    return rows

if len(sys.argv) > 5:  # measure the control without a cap
    load_whole()
    print(json.dumps({"whole_mb": (vm_kb("VmPeak") * 1024 - imported) >> 20}))
    sys.exit(0)
stats = ingest.ingest_source("cambrian", profile, lake, log=lambda m: None).stats
used = vm_kb("VmPeak") * 1024 - imported
try:
    load_whole()
    whole_failed = False
except MemoryError:
    whole_failed = True
print(json.dumps({"rows_in": stats.rows_in, "rows_kept": stats.rows_kept, "rows_quarantined": stats.rows_quarantined,
                  "reasons": dict(stats.reasons), "imported_mb": imported >> 20, "used_mb": used >> 20,
                  "whole_failed": whole_failed}))
"""


def _row(i: int) -> dict:
    words = " ".join(f"word{(i * 7 + k) % 997}" for k in range(30))
    return {"id": f"row_{i}", "conversations": [{"from": "human", "value": f"Question {i}: {words}?"},
                                                {"from": "gpt", "value": f"Answer {i}: {words}."},
                                                {"from": "human", "value": f"And then? {words}"},
                                                {"from": "gpt", "value": f"Then {words}."}]}


def _planted() -> list[bytes]:
    bad_byte = json.dumps(_row(-1)).encode().replace(b"Question", b"Qu\xe9stion")
    malformed = b'{"id": "row_-2", "conversations": [tru]}'
    surrogate = json.dumps(_row(-3)).replace("Answer", "\\ud800Answer").encode()
    return [bad_byte, malformed, surrogate]


@pytest.fixture(scope="module")
def big_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("big")
    out = {}
    for kind in ("jsonl", "json"):
        path = folder / f"big.{kind}"
        planted = _planted()
        with path.open("wb") as f:
            f.write(b"[\n" if kind == "json" else b"")
            sep = b",\n" if kind == "json" else b"\n"
            for i in range(N_ROWS):
                if i and i % (N_ROWS // (BAD + 1)) == 0 and planted:
                    f.write(planted.pop() + sep)
                f.write(json.dumps(_row(i)).encode() + (sep if kind == "jsonl" or i < N_ROWS - 1 else b""))
            f.write(b"\n]\n" if kind == "json" else b"")
        assert 50 * 2**20 < path.stat().st_size < 100 * 2**20
        out[kind] = path
    return out


def _run(path: Path, lake_root: Path, writer: str, budget_mb: int = BUDGET_MB) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MALLOC_ARENA_MAX": "1", "ARROW_DEFAULT_MEMORY_POOL": "system",
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, str(path), str(lake_root), str(budget_mb), writer],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _check(out: dict, budget_mb: int = BUDGET_MB) -> None:
    assert out["whole_failed"], f"the cap ({budget_mb} MB over the imports) must be too small for a whole load"
    assert out["used_mb"] < budget_mb
    assert (out["rows_in"], out["rows_kept"], out["rows_quarantined"]) == (N_ROWS + BAD, N_ROWS, BAD)
    assert out["reasons"] == {"bad encoding": 1, "malformed JSON": 1, "bad text": 1}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("kind", ["jsonl", "json"])
def test_ingest_streams_a_source_larger_than_its_memory(big_files, tmp_path, kind):
    _check(_run(big_files[kind], tmp_path / "lake", "stand-in"))


@pytest.mark.timeout(600)
def test_ingest_with_the_real_writer_streams_too(big_files, tmp_path):
    _check(_run(big_files["jsonl"], tmp_path / "lake", "real", REAL_WRITER_BUDGET_MB), REAL_WRITER_BUDGET_MB)
