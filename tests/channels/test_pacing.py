"""``SendPacer``: per-chat spacing, the global rate, and chats not waiting on each other."""

from __future__ import annotations

import asyncio
import time

from channels.pacing import SendPacer


class Clock:
    """A fixed clock whose sleeps are recorded instead of slept."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))


def pacer(clock: Clock, *, interval: float = 1.0, per_second: int | None = None) -> SendPacer:
    return SendPacer(
        interval_for=lambda _: interval,
        per_second=per_second,
        monotonic=clock.monotonic,
        sleep=clock.sleep,
    )


async def test_messages_to_one_chat_are_spaced_by_its_interval() -> None:
    clock = Clock()
    paced = pacer(clock, interval=1.0)
    for _ in range(3):
        await paced.wait("chat")
    assert clock.sleeps == [1.0, 2.0]  # the second at +1 s, the third at +2 s


async def test_the_interval_counts_from_the_last_send() -> None:
    clock = Clock()
    paced = pacer(clock, interval=1.0)
    await paced.wait("chat")
    clock.now += 5.0
    await paced.wait("chat")
    assert clock.sleeps == []


async def test_other_chats_do_not_wait_for_a_chat_that_must() -> None:
    clock = Clock()
    paced = pacer(clock, interval=3.0)
    await paced.wait("group")
    await paced.wait("group")  # reserved 3 s ahead
    await paced.wait("other")
    assert clock.sleeps == [3.0]


async def test_the_global_rate_holds_back_the_message_over_it() -> None:
    clock = Clock()
    paced = pacer(clock, interval=0.0, per_second=3)
    for chat in ("a", "b", "c", "d", "e", "f", "g"):
        await paced.wait(chat)
    # Three in the first second, three in the next, the seventh a second later.
    assert clock.sleeps == [1.0, 1.0, 1.0, 2.0]


async def test_a_waiting_chat_does_not_block_another_in_real_time() -> None:
    """The bug this shape fixes: the pacer slept while holding a lock shared by all chats."""
    paced = SendPacer(interval_for=lambda _: 0.5)
    await paced.wait("slow")
    slow = asyncio.create_task(paced.wait("slow"))  # must wait 0.5 s
    await asyncio.sleep(0.01)
    started = time.monotonic()
    await paced.wait("fast")
    assert time.monotonic() - started < 0.1
    assert not slow.done()
    await slow
