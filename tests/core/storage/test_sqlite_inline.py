"""SQLite statements on the loop's thread, and the write gate that keeps that from stalling."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from core.storage import Database
from core.storage.sqlite_inline import InlineSQLiteConnection

# Generous for a loaded CI machine; a stalled writer costs busy_timeout (5 s) at least.
WRITERS_WALL_LIMIT_S = 5.0


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    """A SQLite database with one table ``rows (writer TEXT, n INTEGER)``."""
    database = Database.open(f"sqlite+aiosqlite:///{tmp_path / 'sb.db'}")
    async with database.transaction() as session:
        await session.execute(text("CREATE TABLE rows (writer TEXT, n INTEGER)"))
    try:
        yield database
    finally:
        await database.close()


async def _count(db: Database, writer: str | None = None) -> int:
    statement = text("SELECT count(*) FROM rows WHERE :writer IS NULL OR writer = :writer")
    async with db.session() as session:
        return int((await session.execute(statement, {"writer": writer})).scalar_one())


async def test_statements_run_on_the_event_loop_thread(db: Database) -> None:
    threads: list[int] = []
    async with db.session() as session:
        raw = await (await session.connection()).get_raw_connection()
        driver = raw.driver_connection
        assert isinstance(driver, InlineSQLiteConnection)
        await driver.set_trace_callback(lambda _statement: threads.append(threading.get_ident()))
        await session.execute(text("SELECT count(*) FROM rows"))
        await driver.set_trace_callback(None)
    assert threads, "the trace callback saw no statement"
    assert set(threads) == {threading.get_ident()}


async def test_a_statement_completes_without_yielding_to_the_loop(db: Database) -> None:
    loop_turns = 0

    async def count_loop_turns() -> None:
        nonlocal loop_turns
        while True:
            loop_turns += 1
            await asyncio.sleep(0)

    async with db.session() as session:
        await session.execute(text("SELECT 1"))  # connection checked out, begun
        ticker = asyncio.create_task(count_loop_turns())
        await asyncio.sleep(0)
        before = loop_turns
        for _ in range(50):
            await session.execute(text("SELECT count(*) FROM rows"))
        during = loop_turns - before
        ticker.cancel()
    # A worker-thread hop per call would give the ticker a turn per call (100+ here).
    assert during == 0


async def test_many_writers_that_await_inside_their_transaction_take_turns(
    db: Database,
) -> None:
    async def writer(index: int) -> None:
        async with db.transaction() as session:
            await session.execute(text("INSERT INTO rows VALUES ('w', :n)"), {"n": index})
            await asyncio.sleep(0)  # another task runs while this one holds the write lock
            await session.execute(text("INSERT INTO rows VALUES ('w', :n)"), {"n": -index})

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for index in range(200):
            group.create_task(writer(index))
    took = time.perf_counter() - started
    assert await _count(db) == 400
    assert took < WRITERS_WALL_LIMIT_S, f"200 writers took {took:.1f} s: a writer stalled"


async def test_readers_are_not_held_up_by_an_open_write_transaction(db: Database) -> None:
    inside = asyncio.Event()
    release = asyncio.Event()

    async def slow_writer() -> None:
        async with db.transaction() as session:
            await session.execute(text("INSERT INTO rows VALUES ('slow', 1)"))
            inside.set()
            await release.wait()

    async with asyncio.TaskGroup() as group:
        group.create_task(slow_writer())
        await inside.wait()
        # WAL: the reader sees the last commit at once, without the uncommitted row.
        assert await asyncio.wait_for(_count(db), timeout=1) == 0
        release.set()
    assert await _count(db) == 1


async def test_a_transaction_holds_the_file_write_lock_from_its_start(
    db: Database, tmp_path: Path
) -> None:
    other = sqlite3.connect(tmp_path / "sb.db", timeout=0, isolation_level=None)
    try:
        async with db.transaction() as session:
            await session.execute(text("SELECT count(*) FROM rows"))  # a read, no write yet
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        other.close()


_OTHER_PROCESS = textwrap.dedent(
    """
    import pathlib, sqlite3, sys, time
    db, stop = sys.argv[1], pathlib.Path(sys.argv[2])
    conn = sqlite3.connect(db, timeout=10, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=10000")
    written = 0
    while True:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO rows VALUES ('other', ?)", (written,))
        conn.execute("COMMIT")
        written += 1
        if written == 1:
            print("writing", flush=True)
        if stop.exists():
            break
        time.sleep(0.001)
    print(written, flush=True)
    """
)


@pytest.mark.slow
async def test_another_process_writing_the_same_file_only_makes_us_wait(
    db: Database, tmp_path: Path
) -> None:
    stop = tmp_path / "stop"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _OTHER_PROCESS,
        str(tmp_path / "sb.db"),
        str(stop),
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        assert await asyncio.wait_for(process.stdout.readline(), timeout=30) == b"writing\n"

        async def writer(index: int) -> None:
            async with db.transaction() as session:
                await session.execute(text("INSERT INTO rows VALUES ('us', :n)"), {"n": index})
                await asyncio.sleep(0)

        started = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for index in range(200):
                group.create_task(writer(index))
        took = time.perf_counter() - started
        assert process.returncode is None, "the other process stopped before we finished"
    finally:
        stop.touch()
        output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0
    other_rows = int(output)
    assert await _count(db, "us") == 200
    assert await _count(db, "other") == other_rows > 1
    assert took < WRITERS_WALL_LIMIT_S * 2, f"our 200 writers took {took:.1f} s"


async def test_a_nested_transaction_raises_instead_of_hanging(db: Database) -> None:
    with pytest.raises(RuntimeError, match="nested write transaction"):
        async with db.transaction() as session:
            await session.execute(text("INSERT INTO rows VALUES ('outer', 1)"))
            async with asyncio.timeout(1), db.transaction():
                pass
    with pytest.raises(RuntimeError, match="nested write transaction"):
        async with db.exclusive_transaction(lock_key=1), asyncio.timeout(1), db.transaction():
            pass
    with pytest.raises(RuntimeError, match="nested write transaction"):
        async with db.transaction(), asyncio.timeout(1):
            async with db.exclusive_transaction(lock_key=1):
                pass
    # The outer transaction rolled back and released the gate.
    async with asyncio.timeout(1), db.transaction() as session:
        await session.execute(text("INSERT INTO rows VALUES ('after', 1)"))
    assert await _count(db, "outer") == 0
    assert await _count(db) == 1


async def test_a_writer_spawned_and_awaited_inside_a_transaction_raises(db: Database) -> None:
    async def write() -> None:
        async with db.transaction() as session:
            await session.execute(text("INSERT INTO rows VALUES ('child', 1)"))

    with pytest.raises(RuntimeError, match="nested write transaction"):
        async with db.transaction(), asyncio.timeout(1):
            await asyncio.gather(write(), write())


async def test_a_task_spawned_in_a_transaction_may_write_once_it_ended(db: Database) -> None:
    may_write = asyncio.Event()

    async def write_later() -> None:
        await may_write.wait()
        async with db.transaction() as session:
            await session.execute(text("INSERT INTO rows VALUES ('later', 1)"))

    async with asyncio.TaskGroup() as group:
        async with db.transaction():
            group.create_task(write_later())  # inherits the context of the hold
        may_write.set()
    assert await _count(db, "later") == 1


async def test_transactions_on_two_databases_may_nest(db: Database, tmp_path: Path) -> None:
    other = Database.open(f"sqlite+aiosqlite:///{tmp_path / 'other.db'}")
    try:
        async with db.transaction() as outer, other.transaction() as inner:
            await inner.execute(text("CREATE TABLE copied (n INTEGER)"))
            await outer.execute(text("INSERT INTO rows VALUES ('outer', 1)"))
        assert await _count(db, "outer") == 1
    finally:
        await other.close()


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_postgresql_has_no_write_gate(db_url: str) -> None:
    db = Database.open(db_url)
    try:
        async with db.transaction() as outer, db.transaction() as inner:
            await outer.execute(text("CREATE TABLE kept (n INTEGER)"))
            await inner.execute(text("SELECT 1"))
    finally:
        await db.close()


def test_the_gate_works_in_one_event_loop_after_another(tmp_path: Path) -> None:
    db = Database.open(f"sqlite+aiosqlite:///{tmp_path / 'sb.db'}")

    async def contended_writes(writer: str) -> None:
        async def write(index: int) -> None:
            async with db.transaction() as session:
                await session.execute(text("CREATE TABLE IF NOT EXISTS rows (w TEXT, n INT)"))
                await session.execute(
                    text("INSERT INTO rows VALUES (:w, :n)"), {"w": writer, "n": index}
                )
                await asyncio.sleep(0)

        await asyncio.gather(*(write(index) for index in range(5)))
        await db.close()  # pooled connections belong to this loop

    asyncio.run(contended_writes("first"))
    asyncio.run(contended_writes("second"))
    with contextlib.closing(sqlite3.connect(tmp_path / "sb.db")) as check:
        assert check.execute("SELECT count(*) FROM rows").fetchone() == (10,)
