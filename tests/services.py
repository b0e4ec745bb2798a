"""What the integration tests need from outside Python: a PostgreSQL server and a Chromium browser.

Without them the tests skip and say why. `.ci/run` installs both, starts PostgreSQL and sets
`MMG4_REQUIRE_SERVICES=1`: there a missing service is a failure, not a skip, so CI cannot go green
by skipping the tests it was meant to run.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator

import pytest

POSTGRES_ENV = "MMG4_TEST_POSTGRES_URL"  # e.g. postgresql+psycopg://postgres@127.0.0.1:54329/postgres
REQUIRE_ENV = "MMG4_REQUIRE_SERVICES"
CHROMIUM = os.environ.get("MMG4_TEST_CHROMIUM", "/usr/bin/chromium")


def unavailable(reason: str) -> None:
    """Skip (a developer's machine without the service), or fail where CI promised the service."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} (and {REQUIRE_ENV}=1 says it must be there)")
    pytest.skip(reason)


def postgres_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        unavailable(f"no PostgreSQL: set {POSTGRES_ENV} to a postgresql+psycopg:// URL of a server where "
                    "the user may CREATE DATABASE (.ci/run starts one)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg 3 is not installed (pip install -e '.[dev]')")
    return url


def _libpq(url: str) -> str:
    """A SQLAlchemy URL as a libpq connection string (psycopg does not know the '+psycopg' suffix)."""
    from sqlalchemy import make_url

    u = make_url(url)
    parts = {"host": u.host, "port": u.port, "user": u.username, "password": u.password, "dbname": u.database}
    return " ".join(f"{k}={v}" for k, v in parts.items() if v)


@contextlib.contextmanager
def fresh_database(url: str) -> Iterator[str]:
    """A new, empty database on the server of `url`, dropped afterwards; yields its SQLAlchemy URL."""
    import psycopg
    from sqlalchemy import make_url

    name = f"mmg4_test_{uuid.uuid4().hex[:12]}"
    admin = _libpq(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sql(url: str, query: str) -> list[tuple]:
    """Rows of one query, through a plain libpq connection (not the code under test)."""
    import psycopg

    with psycopg.connect(_libpq(url)) as conn:
        return conn.execute(query).fetchall()


def chromium() -> str:
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does); "
                    "`playwright install` cannot download browsers here")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        unavailable("Playwright for Python is not installed (pip install -e '.[dev]')")
    return CHROMIUM
