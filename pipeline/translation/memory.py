"""Durable, crash-safe translation memory (TM).

A cache of translations keyed by ``(model fingerprint, decoding settings, target
language, sha256 of the normalised source segment)``. Identical segments are
translated once across rows, datasets and runs; changing the model or any
decoding setting changes the key, so stale translations are never served.

The memory is addressed by a SQLAlchemy database URL. SQLite is the default
(``sqlite:///path/to/tm.sqlite``, see :func:`memory_url_for`); a server database
(``postgresql+psycopg://user:pw@host/db``) works with the same code. Several
processes may read and write at once:

* SQLite runs in WAL mode (readers never block the writer), with a 30 s busy
  timeout, and every write batch takes the write lock up front
  (``BEGIN IMMEDIATE``), so concurrent writers queue instead of failing.
  ``synchronous=NORMAL`` in WAL mode keeps every committed batch across a
  process crash (SIGKILL, OOM kill); only an OS crash / power cut may lose the
  last few commits, never corrupt the file.
* Inserts are ``INSERT ... ON CONFLICT DO NOTHING``: the first translation
  stored for a key wins, and racing writers of the same key cannot fail.

This module deliberately has no Dagster dependency. It is one class with two database backends
(about 450 lines): the SQLite and PostgreSQL details (locking, URLs, driver errors) sit next to the
statements they affect.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    create_engine,
    event,
    func,
    inspect,
    make_url,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.schema import CreateTable

__all__ = [
    "Stats",
    "TranslationMemory",
    "decoding_fingerprint",
    "mask_url",
    "memory_url_for",
    "normalise",
    "segment_key",
]

# At most this many bound parameters per statement (old SQLite builds cap at 999).
MAX_PARAMS = 500
SQLITE_BUSY_TIMEOUT_S = 30
PG_CONNECT_TIMEOUT_S = 10

_metadata = MetaData()
tm_table = Table(
    "tm",
    _metadata,
    Column("model", Text, nullable=False),
    Column("decoding", Text, nullable=False),
    Column("tgt_lang", Text, nullable=False),
    Column("src_hash", Text, nullable=False),
    Column("src", Text, nullable=False),
    Column("tgt", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    PrimaryKeyConstraint("model", "decoding", "tgt_lang", "src_hash", name="tm_pkey"),
)
# Quality-check verdicts of (source text, translation) pairs, keyed by a hash of the checks' version, the
# target language and both texts: a pure function of its key, so shared by every model and decoding.
verdict_table = Table(
    "tm_verdicts",
    _metadata,
    Column("key", Text, nullable=False),
    Column("verdict", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    PrimaryKeyConstraint("key", name="tm_verdicts_pkey"),
)
_KEY_PARAMS = 3  # model, decoding, tgt_lang in every lookup
_LOOKUP_CHUNK = MAX_PARAMS - _KEY_PARAMS
_INSERT_CHUNK = MAX_PARAMS // len(tm_table.columns)

# Python package to install for each SQLAlchemy driver module we may need.
_DRIVER_PACKAGES = {
    "psycopg": "psycopg[binary]",
    "psycopg2": "psycopg2-binary",
}


# --------------------------------------------------------------------------- keys


def normalise(segment: str) -> str:
    """Unicode NFC, collapse internal whitespace runs to one space, strip. Case is kept."""
    if not isinstance(segment, str):
        raise TypeError(f"segment must be str, got {type(segment).__name__}")
    return " ".join(unicodedata.normalize("NFC", segment).split())


def segment_key(segment: str) -> str:
    """sha256 hex of normalise(segment) encoded utf-8."""
    return hashlib.sha256(normalise(segment).encode("utf-8")).hexdigest()


def _json_default(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(
        f"decoding setting value {value!r} ({type(value).__name__}) is not JSON-serialisable; "
        "use str/int/float/bool/None, lists or mappings"
    )


def decoding_fingerprint(settings: Mapping[str, Any]) -> str:
    """Stable short hash (sha256 hex[:16]) of the decoding settings (json.dumps sort_keys, separators)."""
    text = json.dumps(dict(settings), sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# --------------------------------------------------------------------------- URLs


def mask_url(url: str | URL) -> str:
    """The URL as text with any password replaced by ``***`` (works on unparsable URLs too)."""
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # unparsable: mask everything after the first ':' of the userinfo
        head, at, host = str(url).rpartition("@")
        if not at:
            return str(url)
        scheme, sep, userinfo = head.rpartition("://")
        user, colon, _ = userinfo.partition(":")
        return f"{scheme}{sep}{user}:***@{host}" if colon else str(url)


def memory_url_for(path: str | os.PathLike[str]) -> str:
    """An SQLite URL (``sqlite:////abs/path``) for a local filesystem path."""
    text = os.fspath(path)
    if "://" in text:
        raise ValueError(
            f"translation memory path {mask_url(text)!r} looks like a URL; SQLite needs a local "
            "filesystem path (pass a database URL to TranslationMemory directly for a server DB)"
        )
    return "sqlite:///" + str(Path(text).expanduser().resolve())


def _scrub(text: str, url: URL) -> str:
    """Remove the password from arbitrary (driver) error text."""
    if url.password:
        text = text.replace(str(url.password), "***")
    return text


# --------------------------------------------------------------------------- memory


@dataclass(frozen=True)
class Stats:
    """Counts since the memory was opened: distinct segments looked up, hits, new rows written."""

    lookups: int
    hits: int
    writes: int


class TranslationMemory:
    """Translation cache for one model fingerprint and one set of decoding settings.

    >>> with TranslationMemory(memory_url_for("tm.sqlite"), "nllb-3.3B@ab12", {"beam_size": 4}) as tm:
    ...     cached = tm.get_many(segments, "fra_Latn")
    ...     tm.put_many((s, "fra_Latn", t) for s, t in new_translations.items())
    """

    def __init__(self, url: str, model_fingerprint: str, decoding: Mapping[str, Any]):
        if not isinstance(model_fingerprint, str) or not model_fingerprint:
            raise ValueError("model_fingerprint must be a non-empty string")
        self._model = model_fingerprint
        self._decoding_settings = dict(decoding)
        self._decoding_key = decoding_fingerprint(decoding)
        self._url = self._parse_url(url)
        self._engine = self._create_engine(self._url)
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._lookups = self._hits = self._writes = 0
        self._closed = False
        self._ensure_table()

    # ----------------------------------------------------------------- setup

    @staticmethod
    def _parse_url(url: str) -> URL:
        try:
            parsed = make_url(url)
        except (ArgumentError, ValueError, TypeError):
            raise ValueError(
                f"could not parse translation memory URL {mask_url(str(url))!r}; expected e.g. "
                "'sqlite:///path/to/tm.sqlite' (see memory_url_for) or "
                "'postgresql+psycopg://user:***@host:5432/dbname'"
            ) from None
        backend = parsed.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(
                f"unsupported translation memory backend {backend!r} in URL {mask_url(parsed)!r}; "
                "use 'sqlite:///path/to/tm.sqlite' or 'postgresql+psycopg://user:***@host/db'"
            )
        try:
            is_async = parsed.get_dialect().is_async
        except (NoSuchModuleError, ImportError):
            is_async = False  # reported with a clear message by _create_engine
        if is_async:
            raise ValueError(
                f"async driver {parsed.drivername!r} in translation memory URL {mask_url(parsed)!r} "
                "is not supported; use 'sqlite:///...' or 'postgresql+psycopg://...'"
            )
        return parsed

    @staticmethod
    def _create_engine(url: URL) -> Engine:
        masked = mask_url(url)
        backend = url.get_backend_name()
        kwargs: dict[str, Any] = {"hide_parameters": True}
        connect_args: dict[str, Any] = {}
        if backend == "sqlite":
            database = url.database or ""
            if database and database != ":memory:" and not database.startswith("file:"):
                try:
                    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise RuntimeError(
                        f"cannot create the folder for translation memory {masked!r}: {exc}; "
                        "choose a writable path"
                    ) from None
            # The sqlite3 module then opens a write transaction with BEGIN IMMEDIATE
            # (write lock taken up front, waiting on busy_timeout); SELECTs stay lock-free.
            connect_args = {"timeout": SQLITE_BUSY_TIMEOUT_S, "isolation_level": "IMMEDIATE"}
        else:
            kwargs.update(pool_size=2, max_overflow=2, pool_pre_ping=True)
            if "connect_timeout" not in url.query:
                connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
        try:
            engine = create_engine(url, connect_args=connect_args, **kwargs)
        except ImportError as exc:
            module = (exc.name or "").split(".")[0] or str(exc)
            package = _DRIVER_PACKAGES.get(module, module)
            raise RuntimeError(
                f"the database driver {module!r} for translation memory {masked!r} is not "
                f"installed; install it with `pip install '{package}'`"
                + (
                    " (or use a 'postgresql+psycopg://' URL with `pip install 'psycopg[binary]'`)"
                    if module == "psycopg2"
                    else ""
                )
            ) from None
        except NoSuchModuleError:
            raise ValueError(
                f"unknown database driver {url.drivername!r} in translation memory URL {masked!r}; "
                "use 'sqlite:///...' or 'postgresql+psycopg://...'"
            ) from None
        except ArgumentError as exc:
            raise ValueError(
                f"invalid translation memory URL {masked!r}: {_scrub(str(exc), url)}"
            ) from None
        if backend == "sqlite":

            @event.listens_for(engine, "connect")
            def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                try:
                    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_S * 1000}")
                    cursor.execute("PRAGMA journal_mode = WAL")
                    cursor.execute("PRAGMA synchronous = NORMAL")
                finally:
                    cursor.close()

        return engine

    def _ensure_table(self) -> None:
        try:
            try:
                with self._engine.begin() as conn:
                    conn.execute(CreateTable(tm_table, if_not_exists=True))
                    conn.execute(CreateTable(verdict_table, if_not_exists=True))
            except SQLAlchemyError:
                # Another process may have won a CREATE race (PostgreSQL can report it as an
                # error even with IF NOT EXISTS); fine if the tables are there now.
                have = inspect(self._engine)
                if not (have.has_table(tm_table.name) and have.has_table(verdict_table.name)):
                    raise
        except SQLAlchemyError as exc:
            self._engine.dispose()
            detail = _scrub(str(getattr(exc, "orig", None) or exc), self._url).strip()
            raise RuntimeError(
                f"cannot open translation memory {self.url!r}: {detail}; check that the database "
                "server is running and reachable, the credentials and database name are right, "
                "and (for SQLite) the path is writable"
            ) from None

    # ----------------------------------------------------------------- helpers

    def _engine_now(self) -> Engine:
        if self._closed:
            raise RuntimeError(f"translation memory {self.url!r} is closed")
        if os.getpid() != self._pid:  # forked: never share the parent's connections
            self._engine.dispose(close=False)
            self._pid = os.getpid()
        return self._engine

    def _where_key(self, tgt_lang: str) -> Any:
        t = tm_table.c
        return (t.model == self._model) & (t.decoding == self._decoding_key) & (t.tgt_lang == tgt_lang)

    def _insert(self, table: Table = tm_table) -> Any:
        dialect = self._engine.dialect.name
        insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
        return insert(table)

    @staticmethod
    def _check_lang(tgt_lang: str) -> str:
        if not isinstance(tgt_lang, str) or not tgt_lang:
            raise ValueError(f"tgt_lang must be a non-empty string, got {tgt_lang!r}")
        return tgt_lang

    # ----------------------------------------------------------------- API

    @property
    def url(self) -> str:
        """The database URL, password masked."""
        return mask_url(self._url)

    @property
    def model_fingerprint(self) -> str:
        return self._model

    @property
    def decoding_key(self) -> str:
        """decoding_fingerprint() of the decoding settings this memory was opened with."""
        return self._decoding_key

    def get_many(self, segments: Iterable[str], tgt_lang: str) -> dict[str, str]:
        """Map of normalised-key-equal input segment -> cached translation, for those present.

        Keys of the returned dict are the input strings as given (every input whose
        normalised form is cached appears, however it was spaced/composed).
        """
        self._check_lang(tgt_lang)
        by_hash: dict[str, list[str]] = {}
        for segment in dict.fromkeys(segments):
            by_hash.setdefault(segment_key(segment), []).append(segment)
        hashes = list(by_hash)
        found: dict[str, str] = {}
        engine = self._engine_now()
        col = tm_table.c
        with engine.connect() as conn:
            for start in range(0, len(hashes), _LOOKUP_CHUNK):
                chunk = hashes[start : start + _LOOKUP_CHUNK]
                query = select(col.src_hash, col.tgt).where(
                    self._where_key(tgt_lang), col.src_hash.in_(chunk)
                )
                for src_hash, tgt in conn.execute(query):
                    for segment in by_hash[src_hash]:
                        found[segment] = tgt
        with self._lock:
            self._lookups += sum(len(v) for v in by_hash.values())
            self._hits += len(found)
        return found

    def put_many(self, pairs: Iterable[tuple[str, str, str]]) -> int:
        """Store ``(source segment, tgt_lang, translation)`` rows in ONE transaction.

        An existing key is left unchanged (first translation wins). Returns the number
        of new rows. Everything is committed when this returns.
        """
        now = time.time()
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for item in pairs:
            try:
                source, tgt_lang, translation = item
            except (TypeError, ValueError):
                raise ValueError(
                    f"put_many expects (source, tgt_lang, translation) tuples, got {item!r}"
                ) from None
            self._check_lang(tgt_lang)
            if not isinstance(translation, str):
                raise TypeError(f"translation must be str, got {type(translation).__name__}")
            src = normalise(source)
            src_hash = hashlib.sha256(src.encode("utf-8")).hexdigest()
            rows.setdefault(
                (tgt_lang, src_hash),
                {
                    "model": self._model,
                    "decoding": self._decoding_key,
                    "tgt_lang": tgt_lang,
                    "src_hash": src_hash,
                    "src": src,
                    "tgt": translation,
                    "created_at": now,
                },
            )
        if not rows:
            return 0
        # every writer takes the row locks in one order (the key's), so two writers storing shared
        # sentences in different orders queue behind each other instead of deadlocking (PostgreSQL)
        values = [rows[k] for k in sorted(rows)]
        engine = self._engine_now()
        new = 0
        with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                # one prepared statement run many times: sqlite3's executemany sums the inserted rows,
                # and it skips compiling a multi-VALUES statement per chunk (the hot spot in profiles)
                new = conn.execute(self._insert().on_conflict_do_nothing(), values).rowcount
            else:  # a multi-row INSERT's rowcount can be -1 there: count the rows it returns
                for start in range(0, len(values), _INSERT_CHUNK):
                    stmt = self._insert().values(values[start : start + _INSERT_CHUNK])
                    stmt = stmt.on_conflict_do_nothing().returning(tm_table.c.src_hash)
                    new += len(conn.execute(stmt).all())
        with self._lock:
            self._writes += new
        return new

    def get_verdicts(self, keys: Iterable[str]) -> dict[str, str]:
        """Stored quality-check verdicts (JSON text) of the given keys, for those present."""
        keys = list(dict.fromkeys(keys))
        found: dict[str, str] = {}
        col = verdict_table.c
        with self._engine_now().connect() as conn:
            for start in range(0, len(keys), MAX_PARAMS):
                query = select(col.key, col.verdict).where(col.key.in_(keys[start : start + MAX_PARAMS]))
                found.update(conn.execute(query).all())
        return found

    def put_verdicts(self, items: Mapping[str, str]) -> int:
        """Store key -> verdict (JSON text) in one transaction; an existing key is left unchanged."""
        now = time.time()
        values = [{"key": k, "verdict": items[k], "created_at": now} for k in sorted(items)]  # one lock order
        if not values:
            return 0
        engine = self._engine_now()
        new = 0
        with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                new = conn.execute(self._insert(verdict_table).on_conflict_do_nothing(), values).rowcount
            else:
                chunk = MAX_PARAMS // len(verdict_table.columns)
                for start in range(0, len(values), chunk):
                    stmt = self._insert(verdict_table).values(values[start : start + chunk])
                    new += len(conn.execute(stmt.on_conflict_do_nothing().returning(verdict_table.c.key)).all())
        return new

    def count(self, tgt_lang: str | None = None) -> int:
        """Rows stored for this model and decoding settings (optionally one target language)."""
        t = tm_table.c
        cond = (t.model == self._model) & (t.decoding == self._decoding_key)
        if tgt_lang is not None:
            cond = self._where_key(self._check_lang(tgt_lang))
        with self._engine_now().connect() as conn:
            return int(conn.execute(select(func.count()).select_from(tm_table).where(cond)).scalar_one())

    def stats(self) -> Stats:
        with self._lock:
            return Stats(lookups=self._lookups, hits=self._hits, writes=self._writes)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._engine.dispose()

    def __enter__(self) -> TranslationMemory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"TranslationMemory(url={self.url!r}, model_fingerprint={self._model!r}, "
            f"decoding_key={self._decoding_key!r})"
        )
