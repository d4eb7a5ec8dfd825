"""SQLite statements run on the event loop's own thread, and the write gate that makes it safe.

aiosqlite runs every call on a worker thread per connection and wakes the loop with its
result: two cross-thread wake-ups per call, ~0.3 ms on a small VM, and SQLAlchemy makes
several calls per statement (execute, fetch, commit). A chat message makes about sixty of
them. No library offers a synchronous-on-the-loop aiosqlite (aiosqlite always hops;
SQLAlchemy's sync pysqlite dialect cannot serve an ``AsyncEngine``), hence this small
subclass: ``InlineSQLiteConnection`` keeps aiosqlite's API, which SQLAlchemy's aiosqlite
dialect drives, but runs each call at once on the calling thread.

What it trades: a statement now blocks the event loop while SQLite runs it. That is
microseconds for our indexed reads and writes and ~0.1-0.5 ms for a commit's fsync
(``synchronous=FULL``; 0.25 ms median, 0.66 ms p99 on the 2-core dev VM), less than the
hops it replaces. The worker thread still exists
and still opens and closes the connection (and takes the ``isolation_level`` setter that
SQLAlchemy's dialect queues on it directly); it idles otherwise.

The danger it creates: SQLite's busy handler now waits on the loop thread. If one task
held a write transaction open across an ``await`` and another task began writing on a
second connection, the second would block the whole loop in the busy handler, waiting
for a task that can no longer run: a ``busy_timeout`` stall, then "database is locked".
``WriteGate`` prevents that: in-process writers take turns on an ``asyncio.Lock`` (an
await that lets the holder run), so SQLite's file lock is only ever waited on when
another process holds it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from functools import partial
from typing import Any

import aiosqlite
from sqlalchemy.engine import URL

# The gate holds (one token each) the current task is inside. A context variable, so a
# task spawned inside a transaction inherits it and ``gather``-ing writers there is
# reported too instead of deadlocking; a token, so a spawned task that outlives the hold
# is not mistaken for a nested writer. Module level because context variables must be
# (one per gate would never be freed); it holds no state of its own.
_HOLDS: ContextVar[frozenset[object]] = ContextVar(
    "switchboard_sqlite_write_gate_holds", default=frozenset()
)
# aiosqlite's default chunk size for iterating a cursor.
_ITER_CHUNK_SIZE = 64


class InlineSQLiteConnection(aiosqlite.Connection):
    """An aiosqlite connection whose calls run synchronously on the calling thread.

    Open it with ``check_same_thread=False``: the worker thread creates the ``sqlite3``
    connection, the event loop's thread uses it (never both at once).
    """

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")  # the message SQLAlchemy's dialect maps
        return fn(*args, **kwargs)


def inline_connector(url: URL) -> Callable[[], Awaitable[InlineSQLiteConnection]]:
    """An ``async_creator`` for ``create_async_engine``: connects like the aiosqlite dialect
    would for ``url`` (same file name, URI and query options), but inline."""
    # The dialect's own URL parsing, so an async_creator changes nothing about the URL.
    args, options = url.get_dialect()().create_connect_args(url)
    options["check_same_thread"] = False
    connector = partial(sqlite3.connect, *args, **options)

    async def connect() -> InlineSQLiteConnection:
        connection = InlineSQLiteConnection(connector, _ITER_CHUNK_SIZE)
        # As the dialect does for its own connections: a connection never closed (a
        # process stopping abruptly) must not keep the interpreter alive.
        connection._thread.daemon = True
        await connection  # starts the worker thread, which opens the file
        return connection

    return connect


class WriteGate:
    """One writing transaction at a time in this process, with nesting reported, not hung.

    ``hold()`` waits on an ``asyncio.Lock``; entering it again from the task that holds
    it (or from a task it spawned) raises ``RuntimeError`` instead of deadlocking.
    """

    def __init__(self) -> None:
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._hold: object | None = None  # a token of the current hold

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """Wait for the gate, hold it for the ``async with`` body."""
        holds = _HOLDS.get()
        if self._hold is not None and self._hold in holds:
            raise RuntimeError(
                "nested write transaction on one SQLite database: this task already holds "
                "its write gate (an enclosing Database.transaction() or "
                "exclusive_transaction()), so waiting for it would deadlock; finish the "
                "outer transaction first or do the work in its session"
            )
        async with self._lock_of_running_loop():
            self._hold = hold = object()
            _HOLDS.set(holds | {hold})
            try:
                yield
            finally:
                self._hold = None
                _HOLDS.set(holds)

    def _lock_of_running_loop(self) -> asyncio.Lock:
        # An asyncio.Lock belongs to the loop it first waited on; a Database that outlives
        # its loop (one asyncio.run() after another) gets a fresh lock in the next one.
        loop = asyncio.get_running_loop()
        if self._lock is None or self._loop is not loop:
            self._lock, self._loop = asyncio.Lock(), loop
        return self._lock
