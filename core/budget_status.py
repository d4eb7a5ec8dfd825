"""The usage part of the ``/status`` chat command: what the caller used, and what is left."""

from __future__ import annotations

from core.budget_windows import format_instant, format_wait, windows_at
from core.budgets import BudgetGuard, Exceeded, ScopeUsage, Unit, Window
from core.types import ConversationKey


def _amount(usage: ScopeUsage, window: Window, unit: Unit) -> str:
    totals = usage.today if window == "day" else usage.month
    used = totals.total_tokens if unit == "tokens" else totals.requests
    noun = unit if used != 1 else unit.removesuffix("s")
    limit = usage.limit(window, unit)
    if limit is None:
        return f"{used:,} {noun} (no limit)"
    left = usage.remaining(window, unit) or 0
    return f"{used:,} of {limit:,} {unit} ({left:,} left)"


def usage_lines(user: ScopeUsage, conversation: ScopeUsage, over: Exceeded | None) -> list[str]:
    """Lines for ``/status``: the sender's and the conversation's usage, today and this month."""
    lines = [
        f"Your usage today (UTC): {_amount(user, 'day', 'tokens')}, "
        f"{_amount(user, 'day', 'requests')}; this month: {_amount(user, 'month', 'tokens')}.",
        f"This conversation today: {_amount(conversation, 'day', 'tokens')}; "
        f"this month: {_amount(conversation, 'month', 'tokens')}.",
    ]
    if over is not None:
        lines.append(
            f"Budget used up ({over.limit.table} {over.limit.key}): messages to the model are "
            f"refused until {format_instant(over.resets_at)} "
            f"(in {format_wait(over.retry_after_s)})."
        )
    return lines


async def status_lines(guard: BudgetGuard, user: str, conversation: ConversationKey) -> list[str]:
    """The usage lines of ``/status`` for ``user`` in ``conversation``, read now."""
    windows = windows_at(guard.now())
    mine = await guard.user_usage(user, windows=windows)
    shared = await guard.conversation_usage(str(conversation), windows=windows)
    return usage_lines(mine, shared, await guard.exceeded(user, conversation))
