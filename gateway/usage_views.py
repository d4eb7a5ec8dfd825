"""The JSON shape of usage reports, shared by ``GET /api/usage`` and ``switchboard usage``."""

from __future__ import annotations

from pydantic import BaseModel, Field

from core.budgets import ScopeUsage, UsageReport
from core.storage.usage_repo import UsageTotals


class CountsView(BaseModel):
    """Tokens (as the providers reported them) and provider calls in one window."""

    input_tokens: int
    output_tokens: int
    total_tokens: int
    requests: int


class LimitsView(BaseModel):
    """Limits in force; null is no limit (conversations have no request limit)."""

    tokens_per_day: int | None
    tokens_per_month: int | None
    requests_per_day: int | None


class ScopeView(BaseModel):
    """Usage today and this month, the limits in force and what is left of them."""

    today: CountsView
    month: CountsView
    limits: LimitsView
    remaining: LimitsView = Field(description="what is left of each limit; 0 when used up")
    exhausted: bool = Field(description="true while a limit is used up: turns are refused")


class UserUsageView(ScopeView):
    """One user (identity ``platform:user_id``), over all their conversations."""

    user: str = Field(examples=["telegram:123456"])


class ConversationUsageView(ScopeView):
    """One conversation (``platform:chat[:thread]``), every user in it."""

    conversation: str = Field(examples=["telegram:-1001234"])


class UsageView(BaseModel):
    """Usage in the current UTC day and month."""

    now: str = Field(examples=["2026-12-09T21:48:00+00:00"])
    day: str = Field(examples=["2026-12-09"], description="the current UTC day")
    month: str = Field(examples=["2026-12"], description="the current UTC month")
    day_resets_at: str = Field(examples=["2026-12-10T00:00:00+00:00"])
    month_resets_at: str = Field(examples=["2027-01-01T00:00:00+00:00"])
    users: list[UserUsageView] = Field(description="the named user, or the top users this month")
    conversations: list[ConversationUsageView] = Field(
        description="the named conversation, or the top conversations this month"
    )


def _counts(totals: UsageTotals) -> CountsView:
    return CountsView(
        input_tokens=totals.input_tokens,
        output_tokens=totals.output_tokens,
        total_tokens=totals.total_tokens,
        requests=totals.requests,
    )


def _scope(usage: ScopeUsage) -> dict[str, object]:
    remaining = LimitsView(
        tokens_per_day=usage.remaining("day", "tokens"),
        tokens_per_month=usage.remaining("month", "tokens"),
        requests_per_day=usage.remaining("day", "requests"),
    )
    return {
        "today": _counts(usage.today),
        "month": _counts(usage.month),
        "limits": LimitsView(
            tokens_per_day=usage.limit("day", "tokens"),
            tokens_per_month=usage.limit("month", "tokens"),
            requests_per_day=usage.limit("day", "requests"),
        ),
        "remaining": remaining,
        "exhausted": 0 in remaining.model_dump().values(),
    }


def usage_view(report: UsageReport) -> UsageView:
    """The whole report."""
    windows = report.windows
    return UsageView(
        now=windows.now.isoformat(),
        day=windows.day.isoformat(),
        month=windows.month,
        day_resets_at=windows.day_resets_at.isoformat(),
        month_resets_at=windows.month_resets_at.isoformat(),
        users=[UserUsageView.model_validate({"user": u.key, **_scope(u)}) for u in report.users],
        conversations=[
            ConversationUsageView.model_validate({"conversation": c.key, **_scope(c)})
            for c in report.conversations
        ],
    )
