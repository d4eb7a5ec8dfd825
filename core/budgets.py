"""Token budgets and daily request limits, enforced before a turn calls a provider.

``BudgetGuard.check`` runs when a message would go to the model (after the access policy
and the chat commands, so ``/help``, ``/status`` and ``/reset`` still work): when the
sender's or the conversation's budget for the current UTC day or month is used up, the
turn is refused with a sentence saying which budget, its limit, when it resets and what
to do. ``record`` adds each provider call's usage to the persisted counters
(``core.storage.usage_repo``), tool rounds and resumed turns included.

The check is made once, before a turn: a turn that starts under budget may end over it;
the next one is refused. Limits are read from the config callable on every call, so a
hot reload applies to the next message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from core.budget_config import BudgetsSection
from core.budget_windows import Windows, format_instant, format_wait, seconds_until, windows_at
from core.errors import StorageError
from core.policy import Refusal
from core.storage.usage_repo import UsageRepository, UsageTotals, WindowTotals
from core.types import ConversationKey, Usage

log = logging.getLogger("switchboard.budgets")

Scope = Literal["user", "conversation"]
Window = Literal["day", "month"]
Unit = Literal["tokens", "requests"]
Clock = Callable[[], datetime]
BUDGET_EXCEEDED = "budget_exceeded"


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Limit:
    """One limit in force, and where in the config it is set."""

    scope: Scope
    window: Window
    unit: Unit
    value: int
    table: str  # "[budgets]" or '[budgets.users."telegram:42"]'
    key: str  # "user_tokens_per_day", or "tokens_per_day" in an override table

    @property
    def name(self) -> str:
        """``user_tokens_per_day`` and the like, whichever table sets it."""
        return f"{self.scope}_{self.unit}_per_{self.window}"

    @property
    def config_key(self) -> str:
        """The dotted path: ``budgets.user_tokens_per_day``, ``budgets.users.ID.tokens_per_day``."""
        dotted = self.table.strip("[]").replace('"', "")
        return f"{dotted}.{self.key}"

    def used(self, totals: WindowTotals) -> int:
        """How much of this limit ``totals`` has used."""
        window = totals.day if self.window == "day" else totals.month
        return window.total_tokens if self.unit == "tokens" else window.requests


_USER_LIMITS: tuple[tuple[Window, Unit], ...] = (
    ("day", "tokens"),
    ("month", "tokens"),
    ("day", "requests"),
)
_CONVERSATION_LIMITS: tuple[Window, ...] = ("day", "month")


def user_limits(budgets: BudgetsSection, user: str) -> tuple[Limit, ...]:
    """The per-user limits in force for ``user`` (its override first, else ``[budgets]``)."""
    override = budgets.users.get(user)
    found: list[Limit] = []
    for window, unit in _USER_LIMITS:
        key = f"{unit}_per_{window}"
        own: int | None = getattr(override, key) if override is not None else None
        if own is not None:
            limit = Limit("user", window, unit, own, f'[budgets.users."{user}"]', key)
        else:
            value: int = getattr(budgets, f"user_{key}")
            limit = Limit("user", window, unit, value, "[budgets]", f"user_{key}")
        if limit.value > 0:
            found.append(limit)
    return tuple(found)


def conversation_limits(budgets: BudgetsSection) -> tuple[Limit, ...]:
    """The per-conversation limits in force (the same for every conversation)."""
    found: list[Limit] = []
    for window in _CONVERSATION_LIMITS:
        key = f"conversation_tokens_per_{window}"
        value: int = getattr(budgets, key)
        if value > 0:
            found.append(Limit("conversation", window, "tokens", value, "[budgets]", key))
    return tuple(found)


@dataclass(frozen=True, slots=True)
class Exceeded:
    """A limit that is used up: by how much, and when its window ends."""

    limit: Limit
    used: int
    now: datetime
    resets_at: datetime

    @property
    def retry_after_s(self) -> int:
        """Seconds until the window ends."""
        return seconds_until(self.now, self.resets_at)

    def text(self) -> str:
        """What the sender reads: which budget, its limit, when it resets, what to do."""
        limit = self.limit
        adjective = "daily" if limit.window == "day" else "monthly"
        thing = "token budget" if limit.unit == "tokens" else "request limit"
        owner = "You have" if limit.scope == "user" else "This conversation has"
        pronoun = "your" if limit.scope == "user" else "its"
        counted = "tokens" if limit.unit == "tokens" else "model requests"
        period = "today" if limit.window == "day" else "this month"
        return (
            f"{owner} used up {pronoun} {adjective} {thing}: {self.used:,} of "
            f"{limit.value:,} {counted} {period} (UTC). It resets at "
            f"{format_instant(self.resets_at)} (in {format_wait(self.retry_after_s)}). "
            f"To go on sooner, ask an operator to raise {limit.table} {limit.key} "
            "in the gateway's config."
        )

    def details(self) -> dict[str, object]:
        """The audit record's data."""
        return {
            "budget": self.limit.name,
            "config_key": self.limit.config_key,
            "limit": self.limit.value,
            "used": self.used,
            "resets_at": self.resets_at.isoformat(),
        }


def used_up(limits: tuple[Limit, ...], totals: WindowTotals, windows: Windows) -> list[Exceeded]:
    """Every limit of ``limits`` that ``totals`` has used up."""
    found: list[Exceeded] = []
    for limit in limits:
        used = limit.used(totals)
        if used >= limit.value:
            resets = windows.day_resets_at if limit.window == "day" else windows.month_resets_at
            found.append(Exceeded(limit, used, windows.now, resets))
    return found


@dataclass(frozen=True, slots=True)
class ScopeUsage:
    """One user's or conversation's usage today and this month, with its limits."""

    scope: Scope
    key: str
    totals: WindowTotals
    limits: tuple[Limit, ...]

    @property
    def today(self) -> UsageTotals:
        """Usage on the current UTC day."""
        return self.totals.day

    @property
    def month(self) -> UsageTotals:
        """Usage in the current UTC month."""
        return self.totals.month

    def limit(self, window: Window, unit: Unit) -> int | None:
        """The limit in force for ``window`` and ``unit``; None when there is none."""
        for item in self.limits:
            if item.window == window and item.unit == unit:
                return item.value
        return None

    def remaining(self, window: Window, unit: Unit) -> int | None:
        """What is left of that limit (0 when used up); None when there is no limit."""
        for item in self.limits:
            if item.window == window and item.unit == unit:
                return max(item.value - item.used(self.totals), 0)
        return None


@dataclass(frozen=True, slots=True)
class UsageReport:
    """Usage and limits at one instant, for ``GET /api/usage`` and ``switchboard usage``."""

    windows: Windows
    users: tuple[ScopeUsage, ...]
    conversations: tuple[ScopeUsage, ...]


class BudgetGuard:
    """Checks budgets before a turn, records usage after each provider call."""

    def __init__(
        self,
        repo: UsageRepository,
        *,
        settings: Callable[[], BudgetsSection],
        clock: Clock = _utc_now,
    ) -> None:
        self._repo = repo
        self._settings = settings
        self._clock = clock

    def now(self) -> datetime:
        """The guard's clock."""
        return self._clock()

    async def exceeded(self, user: str, conversation: ConversationKey) -> Exceeded | None:
        """The used-up limit that blocks ``user`` here longest, or None when none is."""
        budgets = self._settings()
        if not budgets.any_limit:
            return None  # no query at all while budgets are off
        windows = windows_at(self._clock())
        found: list[Exceeded] = []
        mine = user_limits(budgets, user)
        if mine:
            totals = await self._repo.of_user(
                user, day=windows.day, month_start=windows.month_start
            )
            found.extend(used_up(mine, totals, windows))
        shared = conversation_limits(budgets)
        if shared:
            totals = await self._repo.of_conversation(
                str(conversation), day=windows.day, month_start=windows.month_start
            )
            found.extend(used_up(shared, totals, windows))
        # The sender can go on only once every used-up window has ended: name the last.
        return max(found, key=lambda e: e.resets_at, default=None)

    async def check(self, user: str, conversation: ConversationKey) -> Refusal | None:
        """None when a turn may call a provider, else the refusal to answer with."""
        over = await self.exceeded(user, conversation)
        if over is None:
            return None
        return Refusal(
            BUDGET_EXCEEDED,
            over.text(),
            retry_after_s=float(over.retry_after_s),
            details=over.details(),
        )

    async def record(
        self, *, user: str, conversation: ConversationKey, provider: str, model: str, usage: Usage
    ) -> None:
        """Add one provider call's usage; a database failure is logged, the answer kept."""
        now = self._clock()
        try:
            await self._repo.add(
                user=user,
                conversation=str(conversation),
                provider=provider,
                model=model,
                day=windows_at(now).day,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                now=now,
            )
        except StorageError as exc:
            log.error(
                "event=usage_not_recorded conversation=%s provider=%s tokens=%d problem=%r",
                conversation,
                provider,
                usage.total_tokens,
                exc.message,
            )

    async def user_usage(self, user: str, *, windows: Windows | None = None) -> ScopeUsage:
        """``user``'s usage and limits now."""
        windows = windows or windows_at(self._clock())
        totals = await self._repo.of_user(user, day=windows.day, month_start=windows.month_start)
        return ScopeUsage("user", user, totals, user_limits(self._settings(), user))

    async def conversation_usage(
        self, conversation: str, *, windows: Windows | None = None
    ) -> ScopeUsage:
        """The conversation's usage (``platform:chat[:thread]``) and limits now."""
        windows = windows or windows_at(self._clock())
        totals = await self._repo.of_conversation(
            conversation, day=windows.day, month_start=windows.month_start
        )
        return ScopeUsage(
            "conversation", conversation, totals, conversation_limits(self._settings())
        )

    async def report(
        self, *, user: str | None = None, conversation: str | None = None, top: int = 10
    ) -> UsageReport:
        """The named user and/or conversation; with neither, the top ``top`` of each this month."""
        windows = windows_at(self._clock())
        budgets = self._settings()
        if user is None and conversation is None:
            users = await self._repo.top_users(
                day=windows.day, month_start=windows.month_start, limit=top
            )
            conversations = await self._repo.top_conversations(
                day=windows.day, month_start=windows.month_start, limit=top
            )
            return UsageReport(
                windows,
                tuple(ScopeUsage("user", t.key, t, user_limits(budgets, t.key)) for t in users),
                tuple(
                    ScopeUsage("conversation", t.key, t, conversation_limits(budgets))
                    for t in conversations
                ),
            )
        found_users = (await self.user_usage(user, windows=windows),) if user else ()
        found_conversations = (
            (await self.conversation_usage(conversation, windows=windows),) if conversation else ()
        )
        return UsageReport(windows, found_users, found_conversations)
