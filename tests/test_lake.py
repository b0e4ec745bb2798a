"""The lake: paths from data cannot escape it, writes are atomic, manifests hash what was written."""
import pytest

from pipeline.lake import Lake, Manifest, PathEscapeError, atomic_open, build_manifest, safe_join


@pytest.mark.parametrize("bad", ["../x", "a/../../x", "/etc/passwd", "", "..\\..\\win"])
def test_safe_join_refuses_escapes(tmp_path, bad):
    with pytest.raises(PathEscapeError):
        safe_join(tmp_path, bad)


def test_safe_join_keeps_plain_paths(tmp_path):
    assert str(safe_join(tmp_path, "coco/train2017/1.jpg")).endswith("coco/train2017/1.jpg")


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(target, "w") as f:
            f.write("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]  # no temp file left behind


def test_manifest_digest_follows_content(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"x": 1}\n')
    m1 = build_manifest(tmp_path, {"a.jsonl": 1})
    assert Manifest.read(tmp_path).digest() == m1.digest()
    assert m1.files[0].rows == 1 and m1.files[0].bytes == 9
    (tmp_path / "a.jsonl").write_text('{"x": 2}\n')
    assert build_manifest(tmp_path, {"a.jsonl": 1}).digest() != m1.digest()


def test_lake_layout_and_relative_root():
    lake = Lake.at("lake/test")
    assert lake.root.is_absolute()
    assert str(lake.raw("wit", "rows.parquet")).endswith("lake/test/raw/wit/rows.parquet")
    assert lake.expand("{lake}/toy_world/x") == f"{lake.root}/toy_world/x"


def test_object_store_root_works():
    lake = Lake.at("memory://mmg4-test")
    with atomic_open(lake.raw("x", "f.txt"), "w") as f:
        f.write("hello")
    assert lake.raw("x", "f.txt").read_text() == "hello"


def test_lake_files_get_the_permissions_of_the_umask(tmp_path):
    """Not mkstemp's private 0600: another user, a container or a web server must be able to read the lake."""
    import os
    import stat
    import subprocess
    import sys

    code = ("import os, stat, sys; os.umask(0o022); from pipeline.lake import write_text_atomic; "
            "write_text_atomic(sys.argv[1], 'x'); print(oct(stat.S_IMODE(os.stat(sys.argv[1]).st_mode)))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "f.txt")], capture_output=True, text=True,
                         check=True, cwd=os.path.dirname(os.path.dirname(__file__))).stdout.strip()
    assert out == "0o644"


def test_large_row_streams_spill_to_disk_and_keep_every_row_sorted_by_bucket(tmp_path):
    """Past `memory_rows` the writer spills by bucket range; the file is the same as the in-memory one."""
    import pyarrow.parquet as pq

    from pipeline.rows import BUCKET, read_parquet, write_parquet

    rows = [{"id": f"r{i}", "x": i, **({"late": "field"} if i == 2999 else {})} for i in range(3000)]
    by_id = lambda r: r["id"]  # noqa: E731
    small, big = tmp_path / "mem.parquet", tmp_path / "spill.parquet"
    assert write_parquet(small, rows, row_id=by_id) == 3000
    assert write_parquet(big, iter(rows), row_id=by_id, memory_rows=500) == 3000
    assert read_parquet(big) == read_parquet(small)
    buckets = pq.read_table(big).column(BUCKET).to_pylist()
    assert buckets == sorted(buckets) and len(buckets) == 3000
    assert sum(r["late"] == "field" for r in read_parquet(big)) == 1, "a field first seen late is kept"
    # a chunk read of the spilled file equals the same chunk of the in-memory one
    assert read_parquet(big, 3, 7) == read_parquet(small, 3, 7)
    # without row ids the input order is kept, documents layout included
    docs = tmp_path / "docs.parquet"
    write_parquet(docs, iter(rows), documents=True, memory_rows=700)
    assert [r["id"] for r in read_parquet(docs)] == [r["id"] for r in rows]
