"""The usage counters, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

from core.storage import Database
from core.storage.usage_repo import UsageRepository, UsageTotals

T0 = datetime(2026, 12, 9, 12, 0, tzinfo=UTC)
DEC_1 = date(2026, 12, 1)
DEC_8 = date(2026, 12, 8)
DEC_9 = date(2026, 12, 9)
NOV_30 = date(2026, 11, 30)


async def add(
    repo: UsageRepository,
    *,
    user: str = "telegram:7",
    conversation: str = "telegram:42",
    model: str = "fake-small",
    day: date = DEC_9,
    tokens: tuple[int, int] = (10, 5),
) -> None:
    await repo.add(
        user=user,
        conversation=conversation,
        provider="main",
        model=model,
        day=day,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        now=T0,
    )


async def test_adds_sum_per_day_and_month_and_nothing_else_counts(migrated_db: Database) -> None:
    repo = UsageRepository(migrated_db)
    empty = await repo.of_user("telegram:7", day=DEC_9, month_start=DEC_1)
    assert (empty.day, empty.month) == (UsageTotals(), UsageTotals())

    await add(repo)
    await add(repo, tokens=(100, 50))  # same row: added to it
    await add(repo, model="fake-large", tokens=(1, 1))  # another model, same day
    await add(repo, conversation="slack:C1", tokens=(2, 2))  # another conversation
    await add(repo, day=DEC_8, tokens=(1000, 0))  # earlier this month
    await add(repo, day=NOV_30, tokens=(5000, 0))  # last month: outside the window
    await add(repo, user="telegram:8", tokens=(70, 0))  # another user, same conversation

    mine = await repo.of_user("telegram:7", day=DEC_9, month_start=DEC_1)
    assert mine.day == UsageTotals(input_tokens=113, output_tokens=58, requests=4)
    assert mine.month == UsageTotals(input_tokens=1113, output_tokens=58, requests=5)
    assert mine.month.total_tokens == 1171

    here = await repo.of_conversation("telegram:42", day=DEC_9, month_start=DEC_1)
    assert here.day == UsageTotals(input_tokens=181, output_tokens=56, requests=4)
    assert here.month.requests == 5
    other = await repo.of_conversation("slack:C1", day=DEC_9, month_start=DEC_1)
    assert other.day == UsageTotals(input_tokens=2, output_tokens=2, requests=1)

    november = await repo.of_user("telegram:7", day=NOV_30, month_start=date(2026, 11, 1))
    assert november.day.input_tokens == 5000 and november.month.requests == 1


async def test_concurrent_adds_lose_no_count(migrated_db: Database) -> None:
    repo = UsageRepository(migrated_db)
    # Every caller races to create the same row first, then to add to it.
    await asyncio.gather(*(add(repo, tokens=(3, 1)) for _ in range(20)))
    totals = await repo.of_user("telegram:7", day=DEC_9, month_start=DEC_1)
    assert totals.day == UsageTotals(input_tokens=60, output_tokens=20, requests=20)


async def test_top_users_and_conversations_of_the_month(migrated_db: Database) -> None:
    repo = UsageRepository(migrated_db)
    await add(repo, user="api:small", conversation="api:small", tokens=(5, 0))
    await add(repo, user="api:big", conversation="api:room", day=DEC_8, tokens=(900, 100))
    await add(repo, user="api:mid", conversation="api:room", tokens=(200, 0))
    await add(repo, user="api:old", conversation="api:old", day=NOV_30, tokens=(10**6, 0))

    users = await repo.top_users(day=DEC_9, month_start=DEC_1, limit=2)
    assert [u.key for u in users] == ["api:big", "api:mid"]
    assert users[0].day == UsageTotals() and users[0].month.total_tokens == 1000
    assert users[1].day.total_tokens == 200
    everyone = await repo.top_users(day=DEC_9, month_start=DEC_1, limit=10)
    assert [u.key for u in everyone] == ["api:big", "api:mid", "api:small"]

    rooms = await repo.top_conversations(day=DEC_9, month_start=DEC_1, limit=10)
    assert [(c.key, c.month.total_tokens) for c in rooms] == [("api:room", 1200), ("api:small", 5)]
    assert await repo.top_users(day=DEC_9, month_start=DEC_1, limit=0) == []


async def test_long_names_and_large_counts_fit(migrated_db: Database) -> None:
    repo = UsageRepository(migrated_db)
    model = "m" * 300  # longer than the column: kept cut, not refused by PostgreSQL
    await add(repo, model=model, tokens=(3_000_000_000, 1))  # beyond a 32-bit integer
    await add(repo, model=model, tokens=(3_000_000_000, 1))
    totals = await repo.of_user("telegram:7", day=DEC_9, month_start=DEC_1)
    assert totals.day.input_tokens == 6_000_000_000
    assert isinstance(totals.day.input_tokens, int)
