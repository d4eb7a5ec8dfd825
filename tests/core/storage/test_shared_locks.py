"""Locks shared across replicas: PostgreSQL advisory locks on a connection of their own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from core.keyed_locks import KeyedLocks
from core.storage.db import Database
from core.storage.shared_locks import AdvisoryLocks, LocalLocks, LocksLost


@pytest.fixture
async def two_replicas(pg_url: str) -> AsyncIterator[tuple[AdvisoryLocks, AdvisoryLocks, Database]]:
    """Two replicas' locks (separate engines, as in separate processes) and an admin handle."""
    first, second, admin = Database.open(pg_url), Database.open(pg_url), Database.open(pg_url)
    a, b = AdvisoryLocks(first.engine), AdvisoryLocks(second.engine)
    try:
        yield a, b, admin
    finally:
        await a.close()
        await b.close()
        for db in (first, second, admin):
            await db.close()


async def test_a_lock_is_held_by_one_replica_at_a_time(
    two_replicas: tuple[AdvisoryLocks, AdvisoryLocks, Database],
) -> None:
    a, b, _ = two_replicas
    assert await a.try_acquire("channel:telegram")
    assert not await b.try_acquire("channel:telegram")
    assert not await a.try_acquire("channel:telegram")  # not re-entrant, even for its holder
    assert await b.try_acquire("delivery:telegram")  # another name is another lock
    await a.release("channel:telegram")
    assert await b.try_acquire("channel:telegram")


async def test_closing_releases_every_lock(
    two_replicas: tuple[AdvisoryLocks, AdvisoryLocks, Database],
) -> None:
    a, b, _ = two_replicas
    assert await a.try_acquire("one") and await a.try_acquire("two")
    await a.close()
    assert await b.try_acquire("one") and await b.try_acquire("two")


async def test_a_dead_connection_frees_the_lock_and_its_holder_is_told(
    two_replicas: tuple[AdvisoryLocks, AdvisoryLocks, Database],
) -> None:
    a, b, admin = two_replicas
    assert await a.try_acquire("channel:discord")
    watching = asyncio.create_task(a.watch("channel:discord"))
    await asyncio.sleep(0.1)
    assert not watching.done()  # held: the watch goes on
    # What a kill -9 of the holder does to its session: the server ends it.
    async with admin.transaction() as session:
        ended = await session.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_locks "
                "WHERE locktype = 'advisory' AND pid <> pg_backend_pid() AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        )
    assert ended == 1
    with pytest.raises(LocksLost):
        await asyncio.wait_for(watching, timeout=5)
    assert await b.try_acquire("channel:discord")
    # The old holder reconnects on its next try, and finds the lock taken.
    assert not await a.try_acquire("channel:discord")


async def test_shared_keyed_locks_serialize_a_conversation_across_replicas(
    two_replicas: tuple[AdvisoryLocks, AdvisoryLocks, Database],
) -> None:
    a, b, _ = two_replicas
    replicas = [KeyedLocks(shared=a, namespace="c"), KeyedLocks(shared=b, namespace="c")]
    inside: list[int] = []
    overlaps = 0

    async def handle(index: int) -> None:
        nonlocal overlaps
        async with replicas[index % 2].hold("telegram:42"):
            inside.append(index)
            overlaps += len(inside) > 1
            await asyncio.sleep(0.01)
            inside.remove(index)

    await asyncio.gather(*(handle(i) for i in range(12)))
    assert overlaps == 0
    # Other conversations are not held up: both replicas hold different keys at once.
    async with replicas[0].hold("telegram:1"), replicas[1].hold("telegram:2"):
        pass


async def test_local_locks_are_exclusive_within_the_process() -> None:
    locks = LocalLocks()
    assert await locks.try_acquire("channel:slack")
    assert not await locks.try_acquire("channel:slack")
    await locks.release("channel:slack")
    assert await locks.try_acquire("channel:slack")
