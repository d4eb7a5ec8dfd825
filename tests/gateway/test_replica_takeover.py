"""Replica liveness and the take-over of a dead replica's work, on both backends."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta

from core.storage.db import Database
from core.storage.inbox_repo import InboxRepository
from core.storage.replica_repo import ReplicaRecord, ReplicaRepository
from core.types import ConversationKey, InboundMessage, Sender
from gateway.replicas import Replica, process_start

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def message(index: int) -> InboundMessage:
    return InboundMessage(
        platform="telegram",
        message_id=f"7:{index}",
        conversation=ConversationKey(platform="telegram", chat=str(index % 5)),
        sender=Sender(platform="telegram", user_id=str(index)),
        text=f"message {index}",
    )


def record(replica_id: str, *, host: str, pid: int, start: int, beat: datetime) -> ReplicaRecord:
    return ReplicaRecord(
        id=replica_id,
        host=host,
        pid=pid,
        process_start=start,
        role="gateway",
        started_at=beat,
        heartbeat_at=beat,
    )


async def test_each_message_of_a_dead_replica_is_taken_by_exactly_one_replica(
    migrated_db: Database,
) -> None:
    dead_inbox = InboxRepository(migrated_db, owner="deadbeef")
    for index in range(60):
        assert await dead_inbox.accept(message(index), now=NOW)
    await dead_inbox.mark(platform="telegram", message_id="7:0", status="handled", now=NOW)
    repo = ReplicaRepository(migrated_db)
    takes = await asyncio.gather(
        *(repo.take_messages(dead="deadbeef", by=f"replica{i}") for i in range(4))
    )
    taken = [m.message_id for batch in takes for m in batch]
    assert sorted(taken) == sorted(f"7:{i}" for i in range(1, 60))  # handled ones stay put
    assert len(taken) == len(set(taken))
    assert await repo.take_messages(dead="deadbeef", by="late") == []


async def test_owners_nobody_registered_are_orphans(migrated_db: Database) -> None:
    await InboxRepository(migrated_db).accept(message(1), now=NOW)  # before replicas: no owner
    await InboxRepository(migrated_db, owner="gone").accept(message(2), now=NOW)
    await InboxRepository(migrated_db, owner="alive").accept(message(3), now=NOW)
    repo = ReplicaRepository(migrated_db)
    await repo.register(record("alive", host="elsewhere", pid=1, start=1, beat=NOW))
    assert await repo.orphan_owners() == {"", "gone"}
    (old,) = await repo.take_messages(dead="", by="alive")
    assert old.message_id == "7:1"


async def test_a_replica_is_dead_when_its_process_is_gone_or_its_heartbeat_is_stale(
    migrated_db: Database,
) -> None:
    clock = [NOW]
    me = Replica(ReplicaRepository(migrated_db), role="gateway", clock=lambda: clock[0])
    await me.start()
    try:
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import time; time.sleep(30)"
        )
        start = process_start(child.pid)
        assert start is not None
        mine = me._record()
        here = mine.host
        parent = os.getppid()
        parent_start = process_start(parent) or 0
        alive_here = record("a" * 16, host=here, pid=parent, start=parent_start, beat=NOW)
        child_here = record("b" * 16, host=here, pid=child.pid, start=start, beat=NOW)
        reused_pid = record("c" * 16, host=here, pid=parent, start=1, beat=NOW)
        remote_fresh = record("d" * 16, host="other", pid=1, start=1, beat=NOW)
        stale = NOW - timedelta(seconds=16)
        remote_stale = record("e" * 16, host="other", pid=1, start=1, beat=stale)
        assert not me.is_dead(alive_here) and not me.is_dead(child_here)
        assert me.is_dead(reused_pid)  # same pid, another process: the replica is gone
        assert not me.is_dead(remote_fresh) and me.is_dead(remote_stale)
        assert not me.is_dead(mine)
        child.kill()
        await child.wait()
        assert me.is_dead(child_here)  # at once, no heartbeat timeout on this host
        for other in (alive_here, remote_stale):
            await me.repo.register(other)
        assert await me.dead_owners() == ["e" * 16]
        clock[0] = NOW + timedelta(seconds=30)  # nobody beat for 30 s: but local pids decide
        assert await me.dead_owners() == ["e" * 16]
    finally:
        await me.stop()
    assert me.id not in {r.id for r in await me.repo.all()}  # unregistered at stop
