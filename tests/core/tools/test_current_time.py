"""current_time: UTC by default, any IANA zone, a clear error for an unknown one."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.errors import ToolError
from core.tools import CurrentTime
from core.types import ToolContext

MOMENT = datetime(2026, 12, 2, 9, 30, 15, tzinfo=UTC)


def tool(moment: datetime = MOMENT) -> CurrentTime:
    return CurrentTime(clock=lambda: moment)


async def test_without_a_time_zone_the_answer_is_utc(context: ToolContext) -> None:
    result = await tool().run({}, context=context)
    assert result == "2026-12-02T09:30:15+00:00 (Wednesday, UTC, UTC)"


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("Europe/Berlin", "2026-12-02T10:30:15+01:00 (Wednesday, Europe/Berlin, CET)"),
        ("Asia/Kolkata", "2026-12-02T15:00:15+05:30 (Wednesday, Asia/Kolkata, IST)"),
        ("America/Los_Angeles", "2026-12-02T01:30:15-08:00 (Wednesday, America/Los_Angeles, PST)"),
        ("Pacific/Kiritimati", "2026-12-02T23:30:15+14:00 (Wednesday, Pacific/Kiritimati, +14)"),
    ],
)
async def test_a_time_zone_converts_the_clock(
    context: ToolContext, zone: str, expected: str
) -> None:
    assert await tool().run({"timezone": zone}, context=context) == expected


async def test_summer_time_is_applied(context: ToolContext) -> None:
    summer = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    result = await tool(summer).run({"timezone": "Europe/Berlin"}, context=context)
    assert result == "2026-07-01T14:00:00+02:00 (Wednesday, Europe/Berlin, CEST)"


async def test_a_naive_clock_counts_as_utc(context: ToolContext) -> None:
    naive = datetime(2026, 12, 2, 9, 30, 15)  # noqa: DTZ001 - the point of the test
    assert (await tool(naive).run({}, context=context)).startswith("2026-12-02T09:30:15+00:00")


async def test_an_unknown_zone_is_refused_with_a_suggestion(context: ToolContext) -> None:
    with pytest.raises(ToolError) as caught:
        await tool().run({"timezone": "Europe/Berlim"}, context=context)
    assert str(caught.value) == (
        "current_time: unknown time zone 'Europe/Berlim' (did you mean 'Europe/Berlin'?); "
        "use an IANA name such as 'Europe/Berlin'"
    )
    assert caught.value.tool == "current_time"


@pytest.mark.parametrize(
    "zone", ["Mars/Olympus_Mons", "../../etc/passwd", "/etc/localtime", "Europe"]
)
async def test_paths_and_directories_are_not_zones(context: ToolContext, zone: str) -> None:
    with pytest.raises(ToolError, match="unknown time zone"):
        await tool().run({"timezone": zone}, context=context)
