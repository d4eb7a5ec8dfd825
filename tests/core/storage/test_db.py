"""The database handle: SQLite settings, real transactions, reachability errors."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from sqlalchemy import text

from core.errors import StorageError
from core.storage import Database


def closed_port() -> int:
    """A loopback port nothing listens on (bound once, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_sqlite_connections_run_with_wal_full_sync_and_foreign_keys(
    tmp_path: Path,
) -> None:
    db = Database.open(f"sqlite+aiosqlite:///{tmp_path / 'sb.db'}")
    try:
        # Two connections at once: the settings are per connection, not per file.
        async with db.engine.connect() as first, db.engine.connect() as second:
            for conn in (first, second):
                assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
                assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == 2
                assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
                assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() == 5000
        assert db.is_sqlite
    finally:
        await db.close()


async def test_sqlite_file_directory_is_created(tmp_path: Path) -> None:
    path = tmp_path / "data" / "nested" / "sb.db"
    db = Database.open(f"sqlite+aiosqlite:///{path}")
    try:
        await db.ping()
    finally:
        await db.close()
    assert path.is_file()


async def test_sqlite_directory_that_cannot_be_created_names_the_file(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(StorageError, match="not-a-dir"):
        Database.open(f"sqlite+aiosqlite:///{blocker / 'sb.db'}")


async def test_sqlite_ddl_rolls_back_with_its_transaction(tmp_path: Path) -> None:
    # The sqlite3 module alone would autocommit the CREATE TABLE; a failed migration
    # must not leave half a schema behind.
    db = Database.open(f"sqlite+aiosqlite:///{tmp_path / 'sb.db'}")
    try:
        with pytest.raises(RuntimeError, match="abort"):
            async with db.engine.begin() as conn:
                await conn.execute(text("CREATE TABLE half (id INTEGER)"))
                raise RuntimeError("abort")
        async with db.engine.connect() as conn:
            found = await conn.execute(
                text("SELECT count(*) FROM sqlite_master WHERE name = 'half'")
            )
            assert found.scalar() == 0
    finally:
        await db.close()


async def test_ping_succeeds(db_url: str) -> None:
    db = Database.open(db_url)
    try:
        await db.ping()
    finally:
        await db.close()


async def test_ping_of_closed_port_names_host_and_hides_password() -> None:
    password = "s3cr3t-Pa55word"
    port = closed_port()
    db = Database.open(f"postgresql+asyncpg://switchboard:{password}@127.0.0.1:{port}/sb")
    try:
        with pytest.raises(StorageError) as caught:
            await db.ping()
    finally:
        await db.close()
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "switchboard@" in message
    assert password not in message
    assert password not in repr(caught.value)
    assert password not in repr(db)
    # What a logger with exc_info would print includes the chained driver error.
    assert password not in str(caught.value.__cause__)


async def test_current_revision_of_empty_database_is_none(db_url: str) -> None:
    db = Database.open(db_url)
    try:
        assert await db.current_revision() is None
    finally:
        await db.close()


async def test_transaction_commits_and_rolls_back(db_url: str) -> None:
    db = Database.open(db_url)
    try:
        async with db.transaction() as session:
            await session.execute(text("CREATE TABLE kept (id INTEGER PRIMARY KEY)"))
            await session.execute(text("INSERT INTO kept (id) VALUES (1)"))
        with pytest.raises(RuntimeError):
            async with db.transaction() as session:
                await session.execute(text("INSERT INTO kept (id) VALUES (2)"))
                raise RuntimeError("roll back")
        async with db.session() as session:
            ids = (await session.execute(text("SELECT id FROM kept"))).scalars().all()
        assert ids == [1]
    finally:
        await db.close()


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(StorageError, match="unsupported database backend 'mysql'"):
        Database.open("mysql+aiomysql://root@127.0.0.1/sb")
