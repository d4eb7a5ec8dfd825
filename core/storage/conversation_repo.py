"""Every SQL statement of conversations and their message history.

A conversation row is keyed by ``str(ConversationKey)`` and created on first use with an
upsert (``INSERT ... ON CONFLICT``), so any number of concurrent first messages make one
row and no error. Every write transaction starts with that upsert or another write: on
SQLite a transaction that reads first may fail at once when it later needs the write lock,
and on PostgreSQL the upsert's row lock makes writers of one conversation take turns.

History order is the autoincrement id, not ``created_at``: the clock is injected and may
stand still or step back.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, select, update

from core.storage.db import Database, rowcount
from core.storage.models import ConversationMessageRow, ConversationRow
from core.storage.paging import PagePosition, after_position
from core.types import ChatMessage, ConversationKey, Role, ToolCall


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A history message with its row id, the action that produced it and its token estimate."""

    id: int
    message: ChatMessage
    action_id: str | None
    tokens: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ConversationState:
    """A conversation's overrides, timestamps and how many messages its history holds."""

    key: ConversationKey
    provider: str | None
    model: str | None
    created_at: datetime
    updated_at: datetime
    message_count: int


class ConversationRepository:
    """Reads and writes ``conversations`` and ``conversation_messages``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def ensure(self, key: ConversationKey, *, now: datetime) -> ConversationState:
        """Create the conversation if it is missing, bump its ``updated_at``, return its state."""
        async with self._db.transaction() as session:
            await session.execute(self._upsert(key, now=now))
            found = (await session.execute(_state_query().where(_is(key)))).one()
        return _state(*found)

    async def get(self, key: ConversationKey) -> ConversationState | None:
        """The conversation's state, or None if it was never used."""
        async with self._db.session() as session:
            found = (await session.execute(_state_query().where(_is(key)))).one_or_none()
        return _state(*found) if found is not None else None

    async def set_overrides(
        self, key: ConversationKey, *, provider: str | None, model: str | None, now: datetime
    ) -> None:
        """Set both overrides to the given values (None clears one); creates the row if missing."""
        async with self._db.transaction() as session:
            await session.execute(
                self._upsert(key, now=now, overrides={"provider": provider, "model": model})
            )

    async def append(
        self,
        key: ConversationKey,
        messages: Sequence[tuple[ChatMessage, int]],
        *,
        action_id: str | None,
        now: datetime,
    ) -> builtins.list[StoredMessage]:
        """Store ``(message, tokens)`` pairs in order, in one transaction; creates the
        conversation if missing and bumps its ``updated_at``."""
        rows = [
            ConversationMessageRow(
                conversation=str(key),
                role=message.role.value,
                content=message.content,
                tool_calls=_tool_calls_json(message.tool_calls),
                tool_call_id=message.tool_call_id,
                name=message.name,
                action_id=action_id,
                tokens=tokens,
                created_at=now,
            )
            for message, tokens in messages
        ]
        async with self._db.transaction() as session:
            await session.execute(self._upsert(key, now=now))
            for row in rows:
                # One flush per row: ids then follow the given order on every backend,
                # which a multi-row INSERT does not promise for PostgreSQL sequences.
                session.add(row)
                await session.flush()
        return [_stored(row) for row in rows]

    async def recent(self, key: ConversationKey, *, limit: int) -> builtins.list[StoredMessage]:
        """The newest ``limit`` messages, oldest first."""
        statement = (
            select(ConversationMessageRow)
            .where(ConversationMessageRow.conversation == str(key))
            .order_by(ConversationMessageRow.id.desc())
            .limit(max(limit, 0))
        )
        async with self._db.session() as session:
            rows = (await session.scalars(statement)).all()
        return [_stored(row) for row in reversed(rows)]

    async def page(
        self, key: ConversationKey, *, limit: int, before_id: int | None = None
    ) -> builtins.list[StoredMessage]:
        """Up to ``limit`` messages, newest first, older than message ``before_id`` if given."""
        statement = select(ConversationMessageRow).where(
            ConversationMessageRow.conversation == str(key)
        )
        if before_id is not None:
            statement = statement.where(ConversationMessageRow.id < before_id)
        statement = statement.order_by(ConversationMessageRow.id.desc()).limit(max(limit, 0))
        async with self._db.session() as session:
            rows = (await session.scalars(statement)).all()
        return [_stored(row) for row in rows]

    async def replace_tool_result(
        self, key: ConversationKey, *, tool_call_id: str, content: str, tokens: int, now: datetime
    ) -> bool:
        """Replace the content and token estimate of this conversation's tool message that
        answers ``tool_call_id``; True if one changed."""
        async with self._db.transaction() as session:
            result = await session.execute(
                update(ConversationMessageRow)
                .where(ConversationMessageRow.conversation == str(key))
                .where(ConversationMessageRow.role == Role.TOOL.value)
                .where(ConversationMessageRow.tool_call_id == tool_call_id)
                .values(content=content, tokens=tokens)
            )
            if rowcount(result) == 0:
                return False
            await session.execute(update(ConversationRow).where(_is(key)).values(updated_at=now))
            return True

    async def reset(self, key: ConversationKey, *, now: datetime) -> int:
        """Delete the conversation's messages and clear its overrides; returns how many
        messages went. The conversation row itself stays."""
        async with self._db.transaction() as session:
            result = await session.execute(
                delete(ConversationMessageRow).where(
                    ConversationMessageRow.conversation == str(key)
                )
            )
            await session.execute(
                update(ConversationRow)
                .where(_is(key))
                .values(provider=None, model=None, updated_at=now)
            )
            return rowcount(result)

    async def list(
        self, *, limit: int = 100, after: PagePosition | None = None
    ) -> builtins.list[ConversationState]:
        """Conversations, most recently updated first, each with its message count.

        ``after`` is the (``updated_at``, key) of the last conversation of the previous page.
        """
        statement = _state_query().order_by(ConversationRow.updated_at.desc(), ConversationRow.key)
        if after is not None:
            statement = statement.where(
                after_position(
                    ConversationRow.updated_at, ConversationRow.key, after, ids_descending=False
                )
            )
        statement = statement.limit(max(limit, 0))
        async with self._db.session() as session:
            found = (await session.execute(statement)).all()
        return [_state(row, count) for row, count in found]

    def _upsert(
        self,
        key: ConversationKey,
        *,
        now: datetime,
        overrides: dict[str, str | None] | None = None,
    ) -> Any:
        # Insert-or-bump in one statement: racing first messages never see a duplicate key.
        statement = self._db.insert(ConversationRow).values(
            key=str(key),
            platform=key.platform,
            chat=key.chat,
            # str(key) leaves out an empty thread; the columns agree with it.
            thread=key.thread or None,
            created_at=now,
            updated_at=now,
            **(overrides or {}),
        )
        changes: dict[str, Any] = {"updated_at": statement.excluded.updated_at}
        for column in overrides or {}:
            changes[column] = statement.excluded[column]
        return statement.on_conflict_do_update(index_elements=["key"], set_=changes)


def _is(key: ConversationKey) -> Any:
    return ConversationRow.key == str(key)


def _state_query() -> Select[ConversationRow, int]:
    count = (
        select(func.count(ConversationMessageRow.id))
        .where(ConversationMessageRow.conversation == ConversationRow.key)
        .correlate(ConversationRow)
        .scalar_subquery()
    )
    return select(ConversationRow, count)


def _state(row: ConversationRow, message_count: int) -> ConversationState:
    return ConversationState(
        key=ConversationKey(platform=row.platform, chat=row.chat, thread=row.thread),
        provider=row.provider,
        model=row.model,
        created_at=row.created_at,
        updated_at=row.updated_at,
        message_count=int(message_count),
    )


def _tool_calls_json(calls: Sequence[ToolCall]) -> str | None:
    if not calls:
        return None
    return json.dumps([call.model_dump(mode="json") for call in calls], ensure_ascii=False)


def _stored(row: ConversationMessageRow) -> StoredMessage:
    calls = tuple(ToolCall.model_validate(call) for call in json.loads(row.tool_calls or "[]"))
    return StoredMessage(
        id=row.id,
        message=ChatMessage(
            role=Role(row.role),
            content=row.content,
            tool_calls=calls,
            tool_call_id=row.tool_call_id,
            name=row.name,
        ),
        action_id=row.action_id,
        tokens=row.tokens,
        created_at=row.created_at,
    )
