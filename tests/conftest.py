"""Shared fixtures: a fresh database per test, on SQLite and on PostgreSQL.

PostgreSQL tests use the server at ``postgresql://postgres@127.0.0.1:5432/postgres``
(override with ``SWITCHBOARD_TEST_PG_DSN``); each test gets its own database, dropped
afterwards. An unreachable server fails the tests rather than skipping them, so a
missing backend is never mistaken for a green run.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.engine import make_url

from core.storage import Database
from gateway.schema import upgrade_to_head

PG_DSN_ENV = "SWITCHBOARD_TEST_PG_DSN"
DEFAULT_PG_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
_PG_START_HINT = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


def sqlite_path(url: str) -> Path:
    """The file behind a ``sqlite+aiosqlite:///...`` URL."""
    return Path(make_url(url).database or "")


async def _admin_connection(dsn: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(dsn, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        shown = make_url(dsn).render_as_string(hide_password=True)
        pytest.fail(
            f"PostgreSQL is not reachable at {shown} ({exc}); start it with "
            f"`{_PG_START_HINT}` or point {PG_DSN_ENV} at a server",
            pytrace=False,
        )


@pytest.fixture(params=["sqlite", "postgres"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty database: a SQLite file in ``tmp_path``, or a new PG database."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'switchboard.db'}"
        return
    async with fresh_pg_database() as url:
        yield url


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """The URL of a new, empty PostgreSQL database (dropped after the test)."""
    async with fresh_pg_database() as url:
        yield url


@asynccontextmanager
async def fresh_pg_database() -> AsyncIterator[str]:
    """Create a PostgreSQL database of its own; drop it (connections and all) at the end."""
    dsn = os.environ.get(PG_DSN_ENV, DEFAULT_PG_DSN)
    name = f"sb_test_{secrets.token_hex(6)}"
    admin = await _admin_connection(dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = make_url(dsn).set(drivername="postgresql+asyncpg", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        admin = await _admin_connection(dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def migrated_db(db_url: str) -> AsyncIterator[Database]:
    """An open database at the newest schema; closed after the test."""
    await upgrade_to_head(db_url)
    db = Database.open(db_url)
    try:
        yield db
    finally:
        await db.close()
