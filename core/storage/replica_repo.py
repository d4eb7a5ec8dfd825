"""Every SQL statement of the replica registry (``replicas``) and of work take-overs.

A process that runs turns registers itself, refreshes its heartbeat every few seconds and
removes its row when it stops. Which replicas are dead is decided by the caller
(``gateway.replicas``: a stale heartbeat, or a process this host can see is gone); what
this module guarantees is that a dead replica's work is taken over exactly once however
many replicas try at the same time: every take-over is a conditional UPDATE on the owner.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update

from core.storage.db import Database, rowcount
from core.storage.models import ActionRow, InboundMessageRow, ReplicaRow
from core.types import InboundMessage


@dataclass(frozen=True, slots=True)
class ReplicaRecord:
    """One registered replica."""

    id: str
    host: str
    pid: int
    process_start: int
    role: str
    started_at: datetime
    heartbeat_at: datetime


class ReplicaRepository:
    """Reads and writes ``replicas`` and moves work between owners."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def register(self, replica: ReplicaRecord) -> None:
        """Add ``replica`` (a fresh id per process start)."""
        async with self._db.transaction() as session:
            session.add(
                ReplicaRow(
                    id=replica.id,
                    host=replica.host,
                    pid=replica.pid,
                    process_start=replica.process_start,
                    role=replica.role,
                    started_at=replica.started_at,
                    heartbeat_at=replica.heartbeat_at,
                )
            )

    async def heartbeat(self, replica_id: str, *, now: datetime) -> bool:
        """Refresh the heartbeat; False when the row is gone (declared dead by another)."""
        statement = update(ReplicaRow).where(ReplicaRow.id == replica_id).values(heartbeat_at=now)
        async with self._db.transaction() as session:
            return rowcount(await session.execute(statement)) == 1

    async def remove(self, replica_id: str) -> bool:
        """Delete a replica's row; True if this call did."""
        async with self._db.transaction() as session:
            result = await session.execute(delete(ReplicaRow).where(ReplicaRow.id == replica_id))
            return rowcount(result) == 1

    async def all(self) -> list[ReplicaRecord]:
        """Every registered replica, oldest first."""
        async with self._db.session() as session:
            rows = (await session.scalars(select(ReplicaRow).order_by(ReplicaRow.started_at))).all()
        return [_record(row) for row in rows]

    async def orphan_owners(self) -> set[str]:
        """Owners of accepted messages or running actions that are not registered replicas.

        Rows written before replicas existed (owner NULL) are reported as "".
        """
        registered = select(ReplicaRow.id)
        owners: set[str] = set()
        async with self._db.session() as session:
            for column, status_column, status in (
                (InboundMessageRow.owner, InboundMessageRow.status, "accepted"),
                (ActionRow.owner, ActionRow.status, "running"),
            ):
                statement = (
                    select(column)
                    .where(status_column == status)
                    .where(column.is_(None) | column.not_in(registered))
                    .distinct()
                )
                owners.update(owner or "" for owner in (await session.scalars(statement)).all())
        return owners

    async def take_messages(self, *, dead: str, by: str) -> list[InboundMessage]:
        """Accepted messages of ``dead`` (""= no owner) now owned by ``by``, oldest first.

        The conditional UPDATE hands each message to exactly one caller.
        """
        owned = InboundMessageRow.owner.is_(None) if dead == "" else InboundMessageRow.owner == dead
        statement = (
            update(InboundMessageRow)
            .where(owned)
            .where(InboundMessageRow.status == "accepted")
            .values(owner=by)
            .returning(InboundMessageRow.id, InboundMessageRow.payload)
        )
        async with self._db.transaction() as session:
            rows = (await session.execute(statement)).all()
        return [InboundMessage.model_validate_json(payload) for _, payload in sorted(rows)]

    async def running_actions_of(self, dead: str) -> list[str]:
        """Ids of the actions ``dead`` (""= no owner) left running."""
        owned = ActionRow.owner.is_(None) if dead == "" else ActionRow.owner == dead
        statement = select(ActionRow.id).where(owned).where(ActionRow.status == "running")
        async with self._db.session() as session:
            return list((await session.scalars(statement.order_by(ActionRow.created_at))).all())


def _record(row: ReplicaRow) -> ReplicaRecord:
    return ReplicaRecord(
        id=row.id,
        host=row.host,
        pid=row.pid,
        process_start=row.process_start,
        role=row.role,
        started_at=row.started_at,
        heartbeat_at=row.heartbeat_at,
    )
