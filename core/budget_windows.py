"""The windows budgets are counted over: the calendar day and month in UTC.

A day starts at 00:00 UTC; a month at 00:00 UTC on its 1st. Whatever the clock's own
time zone, instants are converted to UTC first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta


@dataclass(frozen=True, slots=True)
class Windows:
    """The day and month an instant falls in, and when each ends."""

    now: datetime
    day: date
    month_start: date
    day_resets_at: datetime
    month_resets_at: datetime

    @property
    def month(self) -> str:
        """``YYYY-MM``."""
        return f"{self.month_start:%Y-%m}"


def windows_at(now: datetime) -> Windows:
    """The UTC day and month of ``now`` (an aware datetime)."""
    if now.tzinfo is None:
        raise ValueError("naive datetime given; budgets are counted in UTC")
    now = now.astimezone(UTC)
    day = now.date()
    month_start = day.replace(day=1)
    if month_start.month == 12:
        next_month = date(month_start.year + 1, 1, 1)
    else:
        next_month = date(month_start.year, month_start.month + 1, 1)
    return Windows(
        now=now,
        day=day,
        month_start=month_start,
        day_resets_at=_midnight(day + timedelta(days=1)),
        month_resets_at=_midnight(next_month),
    )


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=UTC)


def seconds_until(now: datetime, then: datetime) -> int:
    """Whole seconds from ``now`` to ``then``, rounded up (at least 1)."""
    return max(1, math.ceil((then - now).total_seconds()))


def format_wait(seconds: float) -> str:
    """A wait in words: ``less than a minute``, ``12 min``, ``3 h 12 min``, ``4 days 2 h``."""
    minutes = math.ceil(seconds / 60)
    if seconds < 60:
        return "less than a minute"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    unit = "day" if days == 1 else "days"
    return f"{days} {unit} {hours} h" if hours else f"{days} {unit}"


def format_instant(at: datetime) -> str:
    """``2026-12-03 00:00 UTC``."""
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
