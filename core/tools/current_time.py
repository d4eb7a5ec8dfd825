"""``current_time`` (low): the date and time now, in UTC or an IANA time zone."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from core.errors import ToolError
from core.suggest import did_you_mean
from core.types import SecurityLevel, ToolContext

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The default clock: an aware datetime in UTC."""
    return datetime.now(UTC)


class CurrentTime:
    """Tells the model what time it is; models have no clock of their own."""

    name = "current_time"
    description = (
        "The current date, time and weekday. Optional 'timezone' is an IANA name such as "
        "'Europe/Berlin' or 'America/New_York'; without it the answer is in UTC."
    )
    parameters: Mapping[str, Any] = {
        "type": "object",
        "properties": {
            "timezone": {
                "type": "string",
                "minLength": 1,
                "maxLength": 64,
                "description": "IANA time zone name, for example 'Asia/Tokyo'",
            }
        },
        "additionalProperties": False,
    }
    level = SecurityLevel.LOW

    def __init__(self, *, clock: Clock = utc_now) -> None:
        self._clock = clock

    async def run(self, arguments: Mapping[str, Any], *, context: ToolContext) -> str:
        """``2026-12-02T10:00:00+01:00 (Wednesday, Europe/Berlin, CET)``."""
        name = arguments.get("timezone") or "UTC"
        zone = _zone(name)
        now = self._clock()
        if now.tzinfo is None:  # a clock that forgot its zone still means UTC
            now = now.replace(tzinfo=UTC)
        local = now.astimezone(zone)
        stamp = local.isoformat(timespec="seconds")
        return f"{stamp} ({local:%A}, {name}, {local.tzname()})"


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    # ValueError: not a key at all ("../x", "/etc/x"); OSError: a tzdata directory, not a zone.
    except (ZoneInfoNotFoundError, ValueError, OSError):
        hint = did_you_mean(name, available_timezones())
        raise ToolError(
            f"current_time: unknown time zone {name!r}{hint}; use an IANA name such as "
            "'Europe/Berlin'",
            tool="current_time",
        ) from None
