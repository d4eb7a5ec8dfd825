"""This process as one replica among several: registered, heartbeating, taking over the dead.

Every process that runs turns (``switchboard run``, and CLI commands such as ``chat``)
registers a row in ``replicas`` with a fresh id and refreshes its heartbeat every
``HEARTBEAT_S``. What it accepts from a platform and the actions it starts carry that id,
so when it dies another replica knows exactly which work was cut off:

- a replica is dead when its heartbeat is older than ``DEAD_AFTER_S``, or at once when it
  ran on this very host (same kernel boot and pid namespace) and its process is gone;
- owners that are not registered at all (a replica that stopped, rows from before
  replicas existed) are dead too;
- the gateway's recovery pass (at start-up and every ``RECOVERY_EVERY_S``) fails the
  actions a dead replica left running (never run twice), takes its accepted messages
  (a conditional UPDATE: exactly one replica gets each), answers them like after a crash
  of a single process, and only then removes its row.

A replica whose heartbeat was late enough to be declared dead finds its row gone at the
next beat and registers again; what was taken from it in between is answered once anyway,
because replies are queued only while their message is still "accepted".
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import StorageError
from core.storage.replica_repo import ReplicaRecord, ReplicaRepository

if TYPE_CHECKING:
    from gateway.runtime import Runtime

log = logging.getLogger("switchboard.replicas")

HEARTBEAT_S = 2.0
DEAD_AFTER_S = 15.0
RECOVERY_EVERY_S = 2.0


def _utc_now() -> datetime:
    return datetime.now(UTC)


def host_identity() -> str:
    """hostname|boot id|pid namespace: equal for processes that can see each other's pids."""
    parts = [socket.gethostname()]
    try:
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
        parts.append(os.readlink("/proc/self/ns/pid"))
    except OSError:
        parts.append(f"nopid-{secrets.token_hex(4)}")  # no /proc: never trust a pid check
    return "|".join(parts)[:256]


def hostname_of(host: str) -> str:
    """The hostname part of a ``host_identity``."""
    return host.split("|", 1)[0]


def process_start(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot; None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ")".
    return int(stat.rsplit(")", 1)[1].split()[19])


class Replica:
    """This process's registration, its heartbeat, and the judgement of other replicas."""

    def __init__(
        self,
        repo: ReplicaRepository,
        *,
        role: str,
        clock: Callable[[], datetime] = _utc_now,
        dead_after_s: float = DEAD_AFTER_S,
    ) -> None:
        self.repo = repo
        self.id = secrets.token_hex(8)
        self.role = role
        self._clock = clock
        self._dead_after = timedelta(seconds=dead_after_s)
        self._host = host_identity()
        self._pid = os.getpid()
        self._task: asyncio.Task[None] | None = None

    def _record(self) -> ReplicaRecord:
        now = self._clock()
        return ReplicaRecord(
            id=self.id,
            host=self._host,
            pid=self._pid,
            process_start=process_start(self._pid) or 0,
            role=self.role,
            started_at=now,
            heartbeat_at=now,
        )

    async def start(self) -> None:
        """Register, and keep the heartbeat going in the background."""
        await self.repo.register(self._record())
        self._task = asyncio.create_task(self._beat_forever(), name=f"replica-heartbeat:{self.id}")

    async def stop(self) -> None:
        """Stop the heartbeat and unregister (what is left accepted is taken over by others)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        try:
            await self.repo.remove(self.id)
        except StorageError as exc:
            log.warning("event=replica_not_unregistered replica=%s problem=%r", self.id, exc)

    async def _beat_forever(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                if not await self.repo.heartbeat(self.id, now=self._clock()):
                    log.error(
                        "event=replica_declared_dead replica=%s detail='the heartbeat came too "
                        "late; another replica took over this one's work; registering again'",
                        self.id,
                    )
                    await self.repo.register(self._record())
            except StorageError as exc:
                log.warning("event=heartbeat_failed replica=%s problem=%r", self.id, exc)

    def is_dead(self, other: ReplicaRecord) -> bool:
        """True when ``other`` is certainly gone (never true for this replica)."""
        if other.id == self.id:
            return False
        if other.host == self._host:
            return process_start(other.pid) != other.process_start
        return self._clock() - other.heartbeat_at > self._dead_after

    async def dead_owners(self) -> list[str]:
        """Owners whose work must be taken over: dead replicas, then unregistered owners."""
        dead = [record.id for record in await self.repo.all() if self.is_dead(record)]
        orphans = await self.repo.orphan_owners()
        return dead + sorted(orphans - set(dead) - {self.id})


async def take_over_dead(rt: Runtime) -> int:
    """One recovery pass: every dead replica's work is finished here; returns answers sent."""
    replica = rt.replica
    answered = 0
    for owner in await replica.dead_owners():
        running = await replica.repo.running_actions_of(owner)
        interrupted = await rt.approvals.recover_interrupted(running)
        messages = await replica.repo.take_messages(dead=owner, by=replica.id)
        if interrupted or messages:
            log.warning(
                "event=replica_taken_over dead=%s by=%s actions_interrupted=%d messages=%d",
                owner or "(none)",
                replica.id,
                len(interrupted),
                len(messages),
            )
        answered += await rt.orchestrator.recover(messages)
        if owner:
            await replica.repo.remove(owner)
    return answered


async def recover_forever(rt: Runtime) -> None:
    """The gateway's recovery pass, every ``RECOVERY_EVERY_S``."""
    while True:
        await asyncio.sleep(RECOVERY_EVERY_S)
        await take_over_dead(rt)
