"""Every SQL statement of the outbox (``outbound_messages``).

A turn's replies are enqueued in the same transaction that marks its inbound message
handled, so after a crash a message is either still to be handled or has its replies
waiting here: never both, never neither. A row leaves ``pending`` once, for ``sent`` (with
the platform's message id) or ``failed``; a retry only moves its next attempt later.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import func, select, update
from sqlalchemy.orm import aliased

from core.storage.db import Database, rowcount
from core.storage.models import InboundMessageRow, OutboundMessageRow
from core.types import OutboundItem

OutboxStatus = Literal["pending", "sent", "failed"]


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One row of the outbox."""

    id: int
    item: OutboundItem
    attempts: int
    status: OutboxStatus
    platform_message_id: str | None


@dataclass(frozen=True, slots=True)
class InboundRef:
    """The inbound message a set of replies answers (marked handled with them)."""

    platform: str
    message_id: str


class OutboxRepository:
    """Reads and writes ``outbound_messages``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def enqueue(
        self, items: Sequence[OutboundItem], *, inbound: InboundRef | None, now: datetime
    ) -> bool:
        """Queue ``items``; with ``inbound``, mark it handled in the same transaction.

        Returns False (queuing nothing) when ``inbound`` was already handled: its
        replies were queued before, and queuing them again would answer it twice.
        """
        async with self._db.transaction() as session:
            if inbound is not None:
                marked = await session.execute(
                    update(InboundMessageRow)
                    .where(InboundMessageRow.platform == inbound.platform)
                    .where(InboundMessageRow.message_id == inbound.message_id)
                    .where(InboundMessageRow.status == "accepted")
                    .values(status="handled", handled_at=now)
                )
                if rowcount(marked) != 1:
                    return False
            for item in items:
                session.add(
                    OutboundMessageRow(
                        platform=item.conversation.platform,
                        conversation=str(item.conversation),
                        kind=item.kind,
                        payload=item.model_dump_json(),
                        status="pending",
                        attempts=0,
                        next_attempt_at=now,
                        approval_id=item.approval.id if item.approval else None,
                        created_at=now,
                    )
                )
        return True

    async def due(self, platform: str, *, now: datetime, limit: int = 50) -> list[OutboxEntry]:
        """Pending rows of ``platform`` whose next attempt is due, oldest first.

        A row waits while an earlier row of its conversation waits for a retry, so a
        conversation's replies arrive in order even when one of them had to be retried.
        """
        earlier = aliased(OutboundMessageRow)
        blocked = (
            select(earlier.id)
            .where(earlier.conversation == OutboundMessageRow.conversation)
            .where(earlier.status == "pending")
            .where(earlier.id < OutboundMessageRow.id)
            .where(earlier.next_attempt_at > now)
        )
        statement = (
            select(OutboundMessageRow)
            .where(OutboundMessageRow.platform == platform)
            .where(OutboundMessageRow.status == "pending")
            .where(OutboundMessageRow.next_attempt_at <= now)
            .where(~blocked.exists())
            .order_by(OutboundMessageRow.id)
            .limit(limit)
        )
        async with self._db.session() as session:
            return [_entry(row) for row in (await session.scalars(statement)).all()]

    async def mark_sent(self, entry_id: int, *, platform_message_id: str, now: datetime) -> bool:
        """The platform accepted it; True if this call moved it."""
        return await self._move(
            entry_id, status="sent", now=now, platform_message_id=platform_message_id
        )

    async def mark_failed(self, entry_id: int, *, error: str, now: datetime) -> bool:
        """It can never be delivered (the platform refused it for good)."""
        return await self._move(entry_id, status="failed", now=now, error=error)

    async def retry_later(self, entry_id: int, *, error: str, at: datetime) -> None:
        """Count a failed attempt; the next one is due at ``at``."""
        statement = (
            update(OutboundMessageRow)
            .where(OutboundMessageRow.id == entry_id)
            .where(OutboundMessageRow.status == "pending")
            .values(
                attempts=OutboundMessageRow.attempts + 1,
                next_attempt_at=at,
                last_error=error[:2000],
            )
        )
        async with self._db.transaction() as session:
            await session.execute(statement)

    async def approval_message(self, approval_id: str) -> OutboxEntry | None:
        """The sent message that carries an approval's buttons, if any."""
        statement = (
            select(OutboundMessageRow)
            .where(OutboundMessageRow.approval_id == approval_id)
            .where(OutboundMessageRow.kind == "approval")
            .where(OutboundMessageRow.status == "sent")
            .order_by(OutboundMessageRow.id.desc())
            .limit(1)
        )
        async with self._db.session() as session:
            row = (await session.scalars(statement)).first()
            return _entry(row) if row is not None else None

    async def backlog(self, platform: str | None = None) -> int:
        """How many rows wait to be sent (for one platform, or all)."""
        statement = (
            select(func.count())
            .select_from(OutboundMessageRow)
            .where(OutboundMessageRow.status == "pending")
        )
        if platform is not None:
            statement = statement.where(OutboundMessageRow.platform == platform)
        async with self._db.session() as session:
            return int((await session.execute(statement)).scalar_one())

    async def backlog_by_platform(self) -> dict[str, int]:
        """Rows waiting to be sent, per platform (platforms with none are left out).

        Cheap however many sent rows the table keeps: the distinct platforms are found one
        index seek each (a loose index scan), and each count is a range of the
        (platform, status, id) index.
        """
        counts: dict[str, int] = {}
        platform: str | None = ""
        async with self._db.session() as session:
            while True:
                platform = await session.scalar(
                    select(func.min(OutboundMessageRow.platform)).where(
                        OutboundMessageRow.platform > platform
                    )
                )
                if platform is None:
                    return counts
                pending = await session.scalar(
                    select(func.count())
                    .select_from(OutboundMessageRow)
                    .where(OutboundMessageRow.platform == platform)
                    .where(OutboundMessageRow.status == "pending")
                )
                if pending:
                    counts[platform] = int(pending)

    async def _move(
        self,
        entry_id: int,
        *,
        status: OutboxStatus,
        now: datetime,
        platform_message_id: str | None = None,
        error: str | None = None,
    ) -> bool:
        values: dict[str, object] = {"status": status, "sent_at": now}
        if platform_message_id is not None:
            values["platform_message_id"] = platform_message_id
        if error is not None:
            values["last_error"] = error[:2000]
        statement = (
            update(OutboundMessageRow)
            .where(OutboundMessageRow.id == entry_id)
            .where(OutboundMessageRow.status == "pending")
            .values(values)
        )
        async with self._db.transaction() as session:
            return rowcount(await session.execute(statement)) == 1


def _entry(row: OutboundMessageRow) -> OutboxEntry:
    status: OutboxStatus = row.status  # type: ignore[assignment]
    return OutboxEntry(
        id=row.id,
        item=OutboundItem.model_validate_json(row.payload),
        attempts=row.attempts,
        status=status,
        platform_message_id=row.platform_message_id,
    )
