"""The score cache: NLLB-CLIP scores keyed by (model fingerprint, image sha256, caption key), in SQLite.

An unchanged re-run scores nothing; a changed threshold re-filters from the cache without the model; a
new model (another fingerprint) misses and scores again. The caption key is the sha256 of the language
and the caption: the same words tokenised under another language tag are another text to the model.

The file lives in the lake (`wit/score_cache.sqlite`). Language partitions run in parallel processes:
WAL mode (readers never block the writer), a busy timeout, and `INSERT OR IGNORE`, so racing writers of
the same key cannot fail; every batch is committed before the next is scored, so a killed run keeps what
it scored.
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path
from typing import Iterable, Sequence

__all__ = ["ScoreCache", "caption_key", "image_key"]

BUSY_TIMEOUT_S = 60
_LOOKUP_CHUNK = 400  # keys per SELECT (SQLite's default limit is 999 bound parameters)


def caption_key(caption: str, lang: str) -> str:
    return hashlib.sha256(f"{lang}\0{caption}".encode("utf-8", "surrogatepass")).hexdigest()


def image_key(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ScoreCache:
    """`with ScoreCache(path) as cache:` ... `get_many(model, keys)`, `put_many(model, items)`."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS scores (model TEXT NOT NULL, image TEXT NOT NULL, "
                         "caption TEXT NOT NULL, score REAL NOT NULL, PRIMARY KEY (model, image, caption)) "
                         "WITHOUT ROWID")

    def __enter__(self) -> "ScoreCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def get_many(self, model: str, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], float]:
        """The cached scores of (image sha256, caption key) pairs; missing pairs are absent."""
        wanted = list(dict.fromkeys(keys))
        found: dict[tuple[str, str], float] = {}
        for k in range(0, len(wanted), _LOOKUP_CHUNK):
            chunk = wanted[k:k + _LOOKUP_CHUNK]
            images = sorted({i for i, _ in chunk})
            marks = ",".join("?" * len(images))
            rows = self._db.execute(f"SELECT image, caption, score FROM scores WHERE model = ? AND image IN ({marks})",
                                    (model, *images)).fetchall()
            want = set(chunk)
            found.update({(i, c): s for i, c, s in rows if (i, c) in want})
        return found

    def put_many(self, model: str, items: Sequence[tuple[str, str, float]]) -> None:
        """Store (image sha256, caption key, score) triples in one transaction; existing keys are kept."""
        if not items:
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany("INSERT OR IGNORE INTO scores (model, image, caption, score) VALUES (?, ?, ?, ?)",
                                 [(model, i, c, float(s)) for i, c, s in items])
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def count(self, model: str | None = None) -> int:
        if model is None:
            return self._db.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
        return self._db.execute("SELECT COUNT(*) FROM scores WHERE model = ?", (model,)).fetchone()[0]
