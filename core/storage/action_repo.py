"""SQL for actions and approvals. Every state change is one conditional UPDATE.

A transition names the states it may start from (``WHERE status IN (...)``); the row
count says whether this caller won. So any number of concurrent clicks, replicas or
retries move an approval out of ``pending`` exactly once, and an approved action is
claimed for running exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from core.storage.db import Database, rowcount
from core.storage.models import ActionRow, ApprovalRow
from core.storage.paging import PagePosition, after_position
from core.types import (
    Action,
    ActionKind,
    ActionStatus,
    Approval,
    ApprovalStatus,
    ConversationKey,
    SecurityLevel,
)


@dataclass(frozen=True, slots=True)
class StoredAction:
    """An action with what the domain type leaves out: its hash, result and error."""

    action: Action
    payload_sha256: str
    result: str | None
    error: str | None


def _conversation_text(key: ConversationKey | None) -> str | None:
    return json.dumps(key.model_dump(), sort_keys=True) if key is not None else None


def _conversation_key(text: str | None) -> ConversationKey | None:
    return ConversationKey.model_validate_json(text) if text else None


def _action(row: ActionRow) -> StoredAction:
    return StoredAction(
        action=Action(
            id=row.id,
            kind=ActionKind(row.kind),
            level=SecurityLevel(row.level),
            status=ActionStatus(row.status),
            conversation=_conversation_key(row.conversation),
            requester=row.requester,
            payload=json.loads(row.payload),
            created_at=row.created_at,
            updated_at=row.updated_at,
        ),
        payload_sha256=row.payload_sha256,
        result=row.result,
        error=row.error,
    )


def _approval(row: ApprovalRow) -> Approval:
    return Approval(
        id=row.id,
        action_id=row.action_id,
        payload_sha256=row.payload_sha256,
        status=ApprovalStatus(row.status),
        level=SecurityLevel(row.level),
        requested_by=row.requested_by,
        decided_by=row.decided_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
        decided_at=row.decided_at,
    )


class ActionRepository:
    """Reads and writes ``actions`` and ``approvals``."""

    def __init__(self, db: Database, *, owner: str | None = None) -> None:
        self._db = db
        # This process's replica id, recorded on every action it moves to "running".
        self._owner = owner

    async def add(
        self,
        action: Action,
        *,
        payload_json: str,
        payload_sha256: str,
        approval: Approval | None = None,
    ) -> None:
        """Store an action (and its approval) in one transaction."""
        async with self._db.transaction() as session:
            session.add(
                ActionRow(
                    id=action.id,
                    kind=action.kind.value,
                    level=action.level.value,
                    status=action.status.value,
                    conversation=_conversation_text(action.conversation),
                    requester=action.requester,
                    payload=payload_json,
                    payload_sha256=payload_sha256,
                    created_at=action.created_at,
                    updated_at=action.updated_at,
                )
            )
            if approval is not None:
                await session.flush()  # the approval's foreign key needs the action first
                session.add(
                    ApprovalRow(
                        id=approval.id,
                        action_id=approval.action_id,
                        payload_sha256=approval.payload_sha256,
                        status=approval.status.value,
                        level=approval.level.value,
                        requested_by=approval.requested_by,
                        created_at=approval.created_at,
                        expires_at=approval.expires_at,
                    )
                )

    async def get_action(self, action_id: str) -> StoredAction | None:
        """One action, or None."""
        async with self._db.session() as session:
            row = await session.get(ActionRow, action_id)
            return _action(row) if row is not None else None

    async def get_actions(self, action_ids: Sequence[str]) -> dict[str, StoredAction]:
        """The actions with these ids that exist, by id, in one query."""
        if not action_ids:
            return {}
        async with self._db.session() as session:
            rows = await session.scalars(select(ActionRow).where(ActionRow.id.in_(set(action_ids))))
            return {row.id: _action(row) for row in rows}

    async def list_actions(
        self,
        *,
        statuses: Sequence[ActionStatus] = (),
        conversation: ConversationKey | None = None,
        levels: Sequence[SecurityLevel] = (),
        limit: int = 100,
        after: PagePosition | None = None,
    ) -> list[StoredAction]:
        """Newest first, filtered; ``after`` (the last action of a page) starts the next page."""
        query = select(ActionRow).order_by(ActionRow.created_at.desc(), ActionRow.id.desc())
        if statuses:
            query = query.where(ActionRow.status.in_([s.value for s in statuses]))
        if conversation is not None:
            query = query.where(ActionRow.conversation == _conversation_text(conversation))
        if levels:
            query = query.where(ActionRow.level.in_([level.value for level in levels]))
        if after is not None:
            query = query.where(
                after_position(ActionRow.created_at, ActionRow.id, after, ids_descending=True)
            )
        async with self._db.session() as session:
            rows = (await session.scalars(query.limit(limit))).all()
        return [_action(row) for row in rows]

    async def move_action(
        self,
        action_id: str,
        *,
        from_states: Sequence[ActionStatus],
        to: ActionStatus,
        now: datetime,
        result: str | None = None,
        error: str | None = None,
    ) -> bool:
        """Move an action to ``to`` if it is in one of ``from_states``; True if this call did."""
        values: dict[str, Any] = {"status": to.value, "updated_at": now}
        if to is ActionStatus.RUNNING and self._owner is not None:
            values["owner"] = self._owner
        if result is not None:
            values["result"] = result
        if error is not None:
            values["error"] = error
        statement = (
            update(ActionRow)
            .where(ActionRow.id == action_id)
            .where(ActionRow.status.in_([s.value for s in from_states]))
            .values(values)
        )
        async with self._db.transaction() as session:
            return rowcount(await session.execute(statement)) == 1

    async def get_approval(self, approval_id: str) -> Approval | None:
        """One approval, or None."""
        async with self._db.session() as session:
            row = await session.get(ApprovalRow, approval_id)
            return _approval(row) if row is not None else None

    async def approval_for_action(self, action_id: str) -> Approval | None:
        """The approval of an action, if it needed one."""
        async with self._db.session() as session:
            row = await session.scalar(
                select(ApprovalRow).where(ApprovalRow.action_id == action_id)
            )
            return _approval(row) if row is not None else None

    async def list_approvals(
        self,
        *,
        statuses: Sequence[ApprovalStatus] = (),
        limit: int = 100,
        after: PagePosition | None = None,
    ) -> list[Approval]:
        """Newest first, optionally only some statuses; ``after`` starts the next page."""
        query = select(ApprovalRow).order_by(ApprovalRow.created_at.desc(), ApprovalRow.id.desc())
        if statuses:
            query = query.where(ApprovalRow.status.in_([s.value for s in statuses]))
        if after is not None:
            query = query.where(
                after_position(ApprovalRow.created_at, ApprovalRow.id, after, ids_descending=True)
            )
        async with self._db.session() as session:
            rows = (await session.scalars(query.limit(limit))).all()
        return [_approval(row) for row in rows]

    async def decide(
        self, approval_id: str, *, to: ApprovalStatus, decided_by: str, now: datetime
    ) -> bool:
        """Move a pending, unexpired approval to ``to``; True only for the one caller that did.

        The action follows in the same transaction (pending_approval -> approved/rejected).
        """
        action_status = (
            ActionStatus.APPROVED if to is ApprovalStatus.APPROVED else ActionStatus.REJECTED
        )
        async with self._db.transaction() as session:
            result = await session.execute(
                update(ApprovalRow)
                .where(ApprovalRow.id == approval_id)
                .where(ApprovalRow.status == ApprovalStatus.PENDING.value)
                .where(ApprovalRow.expires_at > now)
                .values(status=to.value, decided_by=decided_by, decided_at=now)
            )
            if rowcount(result) != 1:
                return False
            action_id = await session.scalar(
                select(ApprovalRow.action_id).where(ApprovalRow.id == approval_id)
            )
            await session.execute(
                update(ActionRow)
                .where(ActionRow.id == action_id)
                .where(ActionRow.status == ActionStatus.PENDING_APPROVAL.value)
                .values(status=action_status.value, updated_at=now)
            )
            return True

    async def expire_due(self, *, now: datetime) -> list[Approval]:
        """Expire every pending approval past its deadline (and reject its action)."""
        expired: list[Approval] = []
        async with self._db.session() as session:
            due = (
                await session.scalars(
                    select(ApprovalRow.id)
                    .where(ApprovalRow.status == ApprovalStatus.PENDING.value)
                    .where(ApprovalRow.expires_at <= now)
                )
            ).all()
        for approval_id in due:
            async with self._db.transaction() as session:
                result = await session.execute(
                    update(ApprovalRow)
                    .where(ApprovalRow.id == approval_id)
                    .where(ApprovalRow.status == ApprovalStatus.PENDING.value)
                    .values(
                        status=ApprovalStatus.EXPIRED.value, decided_by="timeout", decided_at=now
                    )
                )
                if rowcount(result) != 1:
                    continue  # decided meanwhile
                row = await session.get(ApprovalRow, approval_id)
                if row is None:
                    continue
                await session.execute(
                    update(ActionRow)
                    .where(ActionRow.id == row.action_id)
                    .where(ActionRow.status == ActionStatus.PENDING_APPROVAL.value)
                    .values(status=ActionStatus.EXPIRED.value, updated_at=now)
                )
                expired.append(_approval(row))
        return expired

    async def count_approvals(self, status: ApprovalStatus) -> int:
        """How many approvals have ``status`` (a range of the status index)."""
        statement = (
            select(func.count()).select_from(ApprovalRow).where(ApprovalRow.status == status.value)
        )
        async with self._db.session() as session:
            return int(await session.scalar(statement) or 0)

    async def interrupted(self) -> list[StoredAction]:
        """Every action ``running`` (all of them were left by a dead process when only one
        process uses the database; with replicas, see ``ReplicaRepository.running_actions_of``)."""
        return await self.list_actions(statuses=[ActionStatus.RUNNING], limit=10_000)
