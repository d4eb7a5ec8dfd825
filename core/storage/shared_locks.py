"""Locks shared by every replica of the gateway: PostgreSQL session advisory locks.

A replica holds them on one dedicated connection of its own, so they last exactly as long
as that connection: when the process dies (kill -9 included) the server ends its session
and every lock it held is free at once, for another replica to take. Used for what must
run in one place at a time: a platform session that must be single (Telegram polling, the
Discord gateway, Slack Socket Mode), a platform's outbox delivery, and a conversation
while one of its messages is handled.

If the lock connection breaks, the locks are gone with it: ``lost`` is set, every
holder is told (``watch``), and the next ``try_acquire`` reconnects.

With SQLite only one gateway process uses the database (``switchboard run`` takes a file
lock), so ``LocalLocks`` grants every lock no other task of this process holds.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger("switchboard.locks")

# How often ``watch`` checks that the lock connection is still there.
_WATCH_EVERY_S = 1.0


class LocksLost(Exception):
    """The connection holding this replica's shared locks broke: they are no longer held."""


class SharedLocks(Protocol):
    """Named locks exclusive across every replica using the database."""

    async def try_acquire(self, name: str) -> bool: ...

    async def release(self, name: str) -> None: ...

    async def watch(self, name: str) -> None: ...

    async def close(self) -> None: ...


def lock_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for ``name`` (collisions: 1 in 2**64)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class LocalLocks:
    """Shared locks for a database only this process uses (SQLite)."""

    def __init__(self) -> None:
        self._held: set[str] = set()

    async def try_acquire(self, name: str) -> bool:
        if name in self._held:
            return False
        self._held.add(name)
        return True

    async def release(self, name: str) -> None:
        self._held.discard(name)

    async def watch(self, name: str) -> None:
        await asyncio.Event().wait()  # nothing can take a local lock away

    async def close(self) -> None:
        self._held.clear()


class AdvisoryLocks:
    """PostgreSQL session-level advisory locks on one dedicated connection."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None
        self._held: set[str] = set()
        self._generation = 0  # bumped each time the connection is replaced
        # One statement at a time on the connection (asyncpg refuses overlapping ones).
        self._using = asyncio.Lock()

    async def try_acquire(self, name: str) -> bool:
        """Take ``name`` if no session (of any replica, this one included) holds it."""
        if name in self._held:
            return False  # held here already: advisory locks are re-entrant, ours are not
        acquired = await self._run(
            "SELECT pg_try_advisory_lock(:key)", lock_key(name), reconnect=True
        )
        if acquired:
            self._held.add(name)
        return bool(acquired)

    async def release(self, name: str) -> None:
        """Let ``name`` go (nothing happens if the connection, and so the lock, is gone)."""
        if name not in self._held:
            return
        self._held.discard(name)
        try:
            await self._run("SELECT pg_advisory_unlock(:key)", lock_key(name), reconnect=False)
        except LocksLost:
            pass  # the lock went with the connection

    async def watch(self, name: str) -> None:
        """Return never while ``name`` is held; raise ``LocksLost`` when it no longer is."""
        generation = self._generation
        while True:
            await asyncio.sleep(_WATCH_EVERY_S)
            if generation != self._generation or name not in self._held:
                raise LocksLost(f"lock {name!r} was lost with its database connection")
            try:
                await self._run("SELECT 1", None, reconnect=False)
            except LocksLost as exc:
                raise LocksLost(f"lock {name!r} was lost with its database connection") from exc

    async def close(self) -> None:
        """Release every lock (by closing the connection)."""
        async with self._using:
            self._held.clear()
            if self._conn is not None:
                conn, self._conn = self._conn, None
                # Really closed, not returned to the pool: the pool's reset would leave
                # session locks held on a connection someone else then checks out.
                await _discard(conn)

    async def _run(self, sql: str, key: int | None, *, reconnect: bool) -> object:
        async with self._using:
            if self._conn is None:
                if not reconnect:
                    raise LocksLost("the lock connection is closed")
                self._conn = await self._engine.connect()
                # Autocommit: a session lock must not sit inside a transaction that a
                # rollback would end; each statement stands alone.
                self._conn = await self._conn.execution_options(isolation_level="AUTOCOMMIT")
                self._generation += 1
            try:
                params = {"key": key} if key is not None else {}
                return (await self._conn.execute(text(sql), params)).scalar()
            except (DBAPIError, OSError) as exc:
                self._drop(exc)
                raise LocksLost(f"the lock connection broke: {exc}") from exc

    def _drop(self, exc: BaseException) -> None:
        if self._held:
            log.error(
                "event=shared_locks_lost locks=%s problem=%r", ",".join(sorted(self._held)), exc
            )
        self._held.clear()
        conn, self._conn = self._conn, None
        self._generation += 1
        if conn is not None:
            # The connection is broken: invalidate it instead of returning it to the pool.
            asyncio.get_running_loop().create_task(_discard(conn))


async def _discard(conn: AsyncConnection) -> None:
    try:
        await conn.invalidate()
        await conn.close()
    except (DBAPIError, OSError):
        pass
