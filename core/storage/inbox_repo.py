"""Every SQL statement of the inbound dedupe ledger (the ``inbound_messages`` table).

Platforms redeliver (webhook retries, gateway reconnects), and several replicas may
receive the same event. ``accept`` is one ``INSERT ... ON CONFLICT DO NOTHING`` on the
unique (platform, message_id), so exactly one caller wins however many race; the row
count says which. Outcomes move only out of "accepted", by a conditional UPDATE, so a
message is marked handled (or dropped, or failed) once.

A message accepted but never marked was cut off by a crash: ``unhandled`` gives it back,
rebuilt from the stored payload, for replay.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, cast, get_args

from sqlalchemy import select, update

from core.storage.db import Database, rowcount
from core.storage.models import InboundMessageRow
from core.types import InboundMessage

InboxStatus = Literal["accepted", "handled", "dropped", "failed"]

_ACCEPTED: InboxStatus = "accepted"
_STATUSES: frozenset[str] = frozenset(get_args(InboxStatus))


class InboxRepository:
    """Reads and writes ``inbound_messages``."""

    def __init__(self, db: Database, *, owner: str | None = None) -> None:
        self._db = db
        # This process's replica id: the owner of what it accepts, until it is handled.
        self._owner = owner

    async def accept(self, message: InboundMessage, *, now: datetime) -> bool:
        """Record a message as "accepted"; False, changing nothing, if it was seen before."""
        statement = (
            self._db.insert(InboundMessageRow)
            .values(
                platform=message.platform,
                message_id=message.message_id,
                conversation=str(message.conversation),
                sender=message.sender.identity,
                payload=message.model_dump_json(),
                status=_ACCEPTED,
                received_at=now,
                owner=self._owner,
            )
            .on_conflict_do_nothing(index_elements=["platform", "message_id"])
        )
        async with self._db.transaction() as session:
            return rowcount(await session.execute(statement)) == 1

    async def mark(
        self, *, platform: str, message_id: str, status: InboxStatus, now: datetime
    ) -> bool:
        """Move an accepted message to ``status``; True only if this call did."""
        if status == _ACCEPTED or status not in _STATUSES:
            raise ValueError(f"cannot mark an inbound message {status!r}")
        statement = (
            update(InboundMessageRow)
            .where(InboundMessageRow.platform == platform)
            .where(InboundMessageRow.message_id == message_id)
            .where(InboundMessageRow.status == _ACCEPTED)
            .values(status=status, handled_at=now)
        )
        async with self._db.transaction() as session:
            return rowcount(await session.execute(statement)) == 1

    async def unhandled(self, *, limit: int = 1000) -> list[InboundMessage]:
        """Messages still "accepted", oldest first, as they arrived."""
        statement = (
            select(InboundMessageRow.payload)
            .where(InboundMessageRow.status == _ACCEPTED)
            .order_by(InboundMessageRow.id)
            .limit(max(limit, 0))
        )
        async with self._db.session() as session:
            payloads = (await session.scalars(statement)).all()
        return [InboundMessage.model_validate_json(payload) for payload in payloads]

    async def status_of(self, *, platform: str, message_id: str) -> InboxStatus | None:
        """Where a message stands, or None if it was never accepted."""
        statement = (
            select(InboundMessageRow.status)
            .where(InboundMessageRow.platform == platform)
            .where(InboundMessageRow.message_id == message_id)
        )
        async with self._db.session() as session:
            status = await session.scalar(statement)
        return cast(InboxStatus, status) if status is not None else None
