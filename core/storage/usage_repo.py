"""Every SQL statement of the usage counters (the ``usage_counters`` table).

One row per (user, UTC day, conversation, provider, model). ``add`` is one
``INSERT ... ON CONFLICT DO UPDATE SET n = n + excluded.n``: the database adds, so
concurrent calls from any number of processes (replicas on one PostgreSQL) never lose a
count, and there is no read-modify-write to race.

Reads sum the rows of a window: a day, or the days of a month, in one statement with
conditional sums, so "today" and "this month" come from one consistent snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Select, case, cast, func, select
from sqlalchemy.orm import InstrumentedAttribute

from core.storage.db import Database
from core.storage.models import UsageRow

_KEY = ["user_identity", "day", "conversation", "provider", "model"]


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """Token counts and provider calls summed over a window."""

    input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class WindowTotals:
    """One user's or conversation's usage on a day and in the month that contains it."""

    key: str
    day: UsageTotals
    month: UsageTotals


class UsageRepository:
    """Reads and adds to ``usage_counters``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(
        self,
        *,
        user: str,
        conversation: str,
        provider: str,
        model: str,
        day: date,
        input_tokens: int,
        output_tokens: int,
        requests: int = 1,
        now: datetime,
    ) -> None:
        """Add to the counters of (user, day, conversation, provider, model)."""
        statement = self._db.insert(UsageRow).values(
            user_identity=user[:256],
            conversation=conversation[:512],
            provider=provider[:128],
            model=model[:256],
            day=day,
            input_tokens=max(input_tokens, 0),
            output_tokens=max(output_tokens, 0),
            requests=max(requests, 0),
            updated_at=now,
        )
        excluded = statement.excluded
        statement = statement.on_conflict_do_update(
            index_elements=_KEY,
            set_={
                "input_tokens": UsageRow.input_tokens + excluded.input_tokens,
                "output_tokens": UsageRow.output_tokens + excluded.output_tokens,
                "requests": UsageRow.requests + excluded.requests,
                "updated_at": excluded.updated_at,
            },
        )
        async with self._db.transaction() as session:
            await session.execute(statement)

    async def of_user(self, user: str, *, day: date, month_start: date) -> WindowTotals:
        """``user``'s usage on ``day`` and from ``month_start`` to ``day``."""
        return await self._one(UsageRow.user_identity, user, day=day, month_start=month_start)

    async def of_conversation(
        self, conversation: str, *, day: date, month_start: date
    ) -> WindowTotals:
        """The conversation's usage (every user in it) on ``day`` and in its month."""
        return await self._one(
            UsageRow.conversation, conversation, day=day, month_start=month_start
        )

    async def top_users(self, *, day: date, month_start: date, limit: int) -> list[WindowTotals]:
        """The users with the most tokens this month, most first."""
        return await self._top(
            UsageRow.user_identity, day=day, month_start=month_start, limit=limit
        )

    async def top_conversations(
        self, *, day: date, month_start: date, limit: int
    ) -> list[WindowTotals]:
        """The conversations with the most tokens this month, most first."""
        return await self._top(UsageRow.conversation, day=day, month_start=month_start, limit=limit)

    async def _one(
        self, column: InstrumentedAttribute[str], value: str, *, day: date, month_start: date
    ) -> WindowTotals:
        statement = _windows(month_start, day).where(column == value)
        async with self._db.session() as session:
            row = (await session.execute(statement)).one()
        return WindowTotals(value, day=_totals(row[0:3]), month=_totals(row[3:6]))

    async def _top(
        self, column: InstrumentedAttribute[str], *, day: date, month_start: date, limit: int
    ) -> list[WindowTotals]:
        tokens = func.sum(UsageRow.input_tokens + UsageRow.output_tokens)
        statement = (
            _windows(month_start, day)
            .add_columns(column)
            .group_by(column)
            .order_by(tokens.desc(), column)
            .limit(max(limit, 0))
        )
        async with self._db.session() as session:
            rows = (await session.execute(statement)).all()
        return [
            WindowTotals(row[6], day=_totals(row[0:3]), month=_totals(row[3:6])) for row in rows
        ]


def _sums(day: date | None) -> list[ColumnElement[Any]]:
    """SUM of each counter (over the rows of ``day`` only, when given), 0 for no rows."""
    columns = (UsageRow.input_tokens, UsageRow.output_tokens, UsageRow.requests)
    sums: list[ColumnElement[Any]] = []
    for column in columns:
        value: Any = column
        if day is not None:
            value = case((UsageRow.day == day, column), else_=0)
        # PostgreSQL sums bigints as numeric: cast back, so every backend answers an integer.
        sums.append(cast(func.coalesce(func.sum(value), 0), BigInteger))
    return sums


def _windows(month_start: date, day: date) -> Select[Any]:
    """The day's sums, then the month's (from ``month_start`` through ``day``)."""
    return select(*_sums(day), *_sums(None)).where(UsageRow.day >= month_start, UsageRow.day <= day)


def _totals(values: Any) -> UsageTotals:
    input_tokens, output_tokens, requests = (int(v or 0) for v in values)
    return UsageTotals(input_tokens, output_tokens, requests)
