"""The budget guard: windows, resets, overrides, unlimited, and what the sender reads."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from core.budget_config import BudgetsSection
from core.budget_status import status_lines
from core.budget_windows import format_wait, windows_at
from core.budgets import BudgetGuard
from core.config import GatewayConfig
from core.config_errors import config_errors
from core.storage import Database
from core.storage.usage_repo import UsageRepository
from core.types import ConversationKey, Usage
from gateway.schema import upgrade_to_head

USER = "telegram:7"
OTHER = "telegram:8"
HERE = ConversationKey(platform="telegram", chat="42")
THERE = ConversationKey(platform="telegram", chat="43")


class Clock:
    """A wall clock the test sets by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Rig:
    """A guard over a real SQLite file, with settings the test replaces at will."""

    def __init__(self, db: Database) -> None:
        self.clock = Clock(datetime(2026, 12, 9, 20, 48, tzinfo=UTC))
        self.budgets = BudgetsSection()
        self.guard = BudgetGuard(
            UsageRepository(db), settings=lambda: self.budgets, clock=self.clock
        )

    def set(self, **values: Any) -> None:
        self.budgets = BudgetsSection.model_validate(values)

    async def spend(
        self, tokens: int, *, user: str = USER, conversation: ConversationKey = HERE
    ) -> None:
        await self.guard.record(
            user=user,
            conversation=conversation,
            provider="main",
            model="fake-small",
            usage=Usage(input_tokens=tokens - tokens // 3, output_tokens=tokens // 3),
        )


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'switchboard.db'}"
    await upgrade_to_head(url)
    db = Database.open(url)
    try:
        yield db
    finally:
        await db.close()


@pytest.fixture
def rig(sqlite_db: Database) -> Rig:
    return Rig(sqlite_db)


async def test_without_limits_nothing_is_refused(rig: Rig) -> None:
    await rig.spend(10**9)
    assert await rig.guard.check(USER, HERE) is None
    rig.set(user_tokens_per_day=0, users={USER: {"tokens_per_day": 0}})  # 0 is no limit too
    assert await rig.guard.check(USER, HERE) is None
    usage = await rig.guard.user_usage(USER)
    assert usage.today.total_tokens == 10**9 and usage.limits == ()
    assert usage.remaining("day", "tokens") is None


async def test_a_used_up_daily_budget_says_which_limit_when_it_resets_and_what_to_do(
    rig: Rig,
) -> None:
    rig.set(user_tokens_per_day=100)
    await rig.spend(60)
    assert await rig.guard.check(USER, HERE) is None
    await rig.spend(50)  # the turn that started under budget ends over it
    refusal = await rig.guard.check(USER, HERE)
    assert refusal is not None and refusal.code == "budget_exceeded"
    assert refusal.message == (
        "You have used up your daily token budget: 110 of 100 tokens today (UTC). "
        "It resets at 2026-12-10 00:00 UTC (in 3 h 12 min). To go on sooner, ask an operator "
        "to raise [budgets] user_tokens_per_day in the gateway's config."
    )
    assert refusal.retry_after_s == 3 * 3600 + 12 * 60
    assert refusal.details == {
        "budget": "user_tokens_per_day",
        "config_key": "budgets.user_tokens_per_day",
        "limit": 100,
        "used": 110,
        "resets_at": "2026-12-10T00:00:00+00:00",
    }
    # Someone else, even in the same conversation, is not affected.
    assert await rig.guard.check(OTHER, HERE) is None

    rig.clock.now = datetime(2026, 12, 9, 23, 59, 59, tzinfo=UTC)
    assert await rig.guard.check(USER, HERE) is not None
    rig.clock.now = datetime(2026, 12, 10, 0, 0, tzinfo=UTC)  # a new UTC day
    assert await rig.guard.check(USER, HERE) is None


async def test_the_monthly_budget_resets_on_the_first_of_the_month(rig: Rig) -> None:
    rig.set(user_tokens_per_month=1000)
    rig.clock.now = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    await rig.spend(600)
    rig.clock.now = datetime(2026, 12, 31, 23, 0, tzinfo=UTC)
    assert await rig.guard.check(USER, HERE) is None
    await rig.spend(400)
    refusal = await rig.guard.check(USER, HERE)
    assert refusal is not None
    assert "monthly token budget: 1,000 of 1,000 tokens this month (UTC)" in refusal.message
    assert "resets at 2027-01-01 00:00 UTC (in 1 h)" in refusal.message
    rig.clock.now = datetime(2027, 1, 1, 0, 0, tzinfo=UTC)
    assert await rig.guard.check(USER, HERE) is None
    january = await rig.guard.user_usage(USER)
    assert january.month.total_tokens == 0


async def test_a_used_up_request_limit_counts_provider_calls(rig: Rig) -> None:
    rig.set(user_requests_per_day=2)
    await rig.spend(1)
    assert await rig.guard.check(USER, HERE) is None
    await rig.spend(1, conversation=THERE)  # requests of every conversation count
    refusal = await rig.guard.check(USER, HERE)
    assert refusal is not None
    assert "daily request limit: 2 of 2 model requests today" in refusal.message
    assert "[budgets] user_requests_per_day" in refusal.message


async def test_an_override_replaces_the_default_for_one_user_only(rig: Rig) -> None:
    rig.set(
        user_tokens_per_day=100,
        user_requests_per_day=50,
        users={USER: {"tokens_per_day": 1000}, OTHER: {"tokens_per_day": 0}},
    )
    await rig.spend(500)
    await rig.spend(500, user=OTHER)
    await rig.spend(500, user="telegram:9")
    assert await rig.guard.check(USER, HERE) is None
    assert await rig.guard.check(OTHER, HERE) is None  # 0 in an override: no limit for them
    assert await rig.guard.check("telegram:9", HERE) is not None  # the default applies
    mine = await rig.guard.user_usage(USER)
    assert mine.limit("day", "tokens") == 1000 and mine.remaining("day", "tokens") == 500
    assert mine.limit("day", "requests") == 50  # not overridden: the default
    await rig.spend(500)
    refusal = await rig.guard.check(USER, HERE)
    assert refusal is not None
    assert '[budgets.users."telegram:7"] tokens_per_day' in refusal.message
    assert refusal.details["config_key"] == "budgets.users.telegram:7.tokens_per_day"


async def test_a_conversation_budget_counts_everyone_in_it(rig: Rig) -> None:
    rig.set(conversation_tokens_per_day=100)
    await rig.spend(60)
    await rig.spend(60, user=OTHER)
    refusal = await rig.guard.check("telegram:9", HERE)
    assert refusal is not None
    assert refusal.message.startswith(
        "This conversation has used up its daily token budget: 120 of 100 tokens today"
    )
    assert "[budgets] conversation_tokens_per_day" in refusal.message
    assert await rig.guard.check(USER, THERE) is None


async def test_when_several_are_used_up_the_one_that_resets_last_is_named(rig: Rig) -> None:
    rig.set(user_tokens_per_day=10, user_tokens_per_month=10, conversation_tokens_per_day=10)
    await rig.spend(20)
    refusal = await rig.guard.check(USER, HERE)
    assert refusal is not None and refusal.details["budget"] == "user_tokens_per_month"
    assert "in 22 days 3 h" in refusal.message  # 2026-12-09 20:48 -> 2027-01-01 00:00


async def test_new_limits_apply_to_the_next_check(rig: Rig) -> None:
    rig.set(user_tokens_per_day=10)
    await rig.spend(20)
    assert await rig.guard.check(USER, HERE) is not None
    rig.set(user_tokens_per_day=1000)  # what a config reload does
    assert await rig.guard.check(USER, HERE) is None


async def test_status_lines_show_usage_limits_and_a_used_up_budget(rig: Rig) -> None:
    rig.set(user_tokens_per_day=100, conversation_tokens_per_month=5000)
    await rig.spend(30)
    assert await status_lines(rig.guard, USER, HERE) == [
        "Your usage today (UTC): 30 of 100 tokens (70 left), 1 request (no limit); "
        "this month: 30 tokens (no limit).",
        "This conversation today: 30 tokens (no limit); this month: 30 of 5,000 tokens "
        "(4,970 left).",
    ]
    await rig.spend(70)
    lines = await status_lines(rig.guard, USER, HERE)
    assert lines[0].startswith("Your usage today (UTC): 100 of 100 tokens (0 left)")
    assert lines[-1] == (
        "Budget used up ([budgets] user_tokens_per_day): messages to the model are refused "
        "until 2026-12-10 00:00 UTC (in 3 h 12 min)."
    )


async def test_a_usage_that_cannot_be_recorded_is_logged_and_the_turn_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = Database.open(f"sqlite+aiosqlite:///{tmp_path / 'never-migrated.db'}")
    try:
        guard = BudgetGuard(UsageRepository(db), settings=BudgetsSection)
        await guard.record(
            user=USER, conversation=HERE, provider="main", model="m", usage=Usage(input_tokens=5)
        )
    finally:
        await db.close()
    assert "event=usage_not_recorded conversation=telegram:42 provider=main" in caplog.text
    assert any(r.levelno == logging.ERROR for r in caplog.records)


def test_windows_are_utc_days_and_months_whatever_the_clock_zone() -> None:
    # New Year's night at 03:00 in UTC+5 is still New Year's Eve in UTC.
    windows = windows_at(datetime(2027, 1, 1, 3, 0, tzinfo=timezone(timedelta(hours=5))))
    assert (windows.day.isoformat(), windows.month) == ("2026-12-31", "2026-12")
    assert windows.day_resets_at == datetime(2027, 1, 1, tzinfo=UTC)
    assert windows.month_resets_at == datetime(2027, 1, 1, tzinfo=UTC)
    january = windows_at(datetime(2027, 1, 31, 12, 0, tzinfo=UTC))
    assert january.day_resets_at == datetime(2027, 2, 1, tzinfo=UTC)
    assert january.month_resets_at == datetime(2027, 2, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        windows_at(datetime(2026, 12, 31))  # naive: refused rather than guessed


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (1, "less than a minute"),
        (59, "less than a minute"),
        (60, "1 min"),
        (61, "2 min"),
        (3600, "1 h"),
        (3 * 3600 + 12 * 60, "3 h 12 min"),
        (86400, "1 day"),
        (2 * 86400 + 3 * 3600 + 1, "2 days 3 h"),
    ],
)
def test_waits_in_words(seconds: int, words: str) -> None:
    assert format_wait(seconds) == words


def test_config_errors_name_the_key() -> None:
    cases = {
        "budgets.user_tokens_per_day": {"user_tokens_per_day": -1},
        "budgets.users": {"users": {"bob": {"tokens_per_day": 5}}},
        "budgets.users.telegram:7.tokens_per_day": {"users": {USER: {"tokens_per_day": "many"}}},
        "budgets.users.telegram:7.tokens_a_day": {"users": {USER: {"tokens_a_day": 5}}},
    }
    messages = {}
    for key, budgets in cases.items():
        with pytest.raises(ValidationError) as caught:
            GatewayConfig.model_validate({"budgets": budgets})
        (error,) = config_errors(caught.value)
        assert error.key_path == key, error.message
        messages[key] = error.message
    assert "'bob' is not of the form 'platform:user_id'" in messages["budgets.users"]
    assert "did you mean 'tokens_per_day'" in messages["budgets.users.telegram:7.tokens_a_day"]
