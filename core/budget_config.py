"""``[budgets]``: token budgets per user and per conversation, and daily request limits.

Windows are calendar UTC days and months. A limit of 0 (or a key left out) means no
limit. ``[budgets.users."platform:user_id"]`` overrides the per-user limits for one
identity; a key left out there falls back to the ``[budgets]`` value, and 0 there lifts
the limit for that user only.

Kept apart from ``core.config`` (which imports it) so that the budget settings and their
rules read in one place.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

# The same identity form as [access] allow and [security] approvers.
_IDENTITY = re.compile(r"^[a-z][a-z0-9_]*:[^\s:][^\s]*$")
# Far above any real budget; keeps a typo (an extra few zeros) from looking like a limit.
_MAX = 10**15


class _Table(BaseModel):
    """Immutable, and unknown keys are errors (like every config table)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class UserBudgetOverride(_Table):
    """``[budgets.users."platform:user_id"]``: one identity's own limits (absent: the default)."""

    tokens_per_day: int | None = Field(default=None, ge=0, le=_MAX)
    tokens_per_month: int | None = Field(default=None, ge=0, le=_MAX)
    requests_per_day: int | None = Field(default=None, ge=0, le=_MAX)


class BudgetsSection(_Table):
    """``[budgets]``: limits over calendar UTC days and months; 0 is no limit.

    Tokens are input plus output tokens as the providers report them; a request is one
    call to a provider (each tool round of a turn is one).
    """

    user_tokens_per_day: int = Field(default=0, ge=0, le=_MAX)
    user_tokens_per_month: int = Field(default=0, ge=0, le=_MAX)
    user_requests_per_day: int = Field(default=0, ge=0, le=_MAX)
    conversation_tokens_per_day: int = Field(default=0, ge=0, le=_MAX)
    conversation_tokens_per_month: int = Field(default=0, ge=0, le=_MAX)
    users: dict[str, UserBudgetOverride] = Field(default_factory=dict)

    @field_validator("users")
    @classmethod
    def _identities(cls, users: dict[str, UserBudgetOverride]) -> dict[str, UserBudgetOverride]:
        for identity in users:
            if not _IDENTITY.match(identity):
                raise ValueError(
                    f"{identity!r} is not of the form 'platform:user_id' "
                    '(for example [budgets.users."telegram:123456"])'
                )
        return users

    @property
    def any_limit(self) -> bool:
        """True when some limit is set (an override included)."""
        defaults = (
            self.user_tokens_per_day,
            self.user_tokens_per_month,
            self.user_requests_per_day,
            self.conversation_tokens_per_day,
            self.conversation_tokens_per_month,
        )
        overrides = (
            value
            for item in self.users.values()
            for value in (item.tokens_per_day, item.tokens_per_month, item.requests_per_day)
        )
        return any(defaults) or any(overrides)
