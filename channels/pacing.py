"""Sending limits kept before a platform has to answer 429.

A ``SendPacer`` spaces the messages to one chat by ``interval_for(chat_id)`` and, when
``per_second`` is set, all messages by a global rate. Sends wait their turn here; a 429
that still comes is honoured by the delivery engine with its ``retry_after``. Shared by
the adapters (it is not an adapter); each one configures its platform's figures.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

_MAX_CHATS = 10_000


class SendPacer:
    """Waits until a send to ``chat_id`` is within the platform's limits.

    Each call reserves its send time under a lock and sleeps outside it, so a chat that
    must wait delays only its own messages, never another chat's. The global rate counts
    reservations in the second before the reserved time (a later reservation made first,
    for a chat's own interval, can let one window hold a message more than ``per_second``;
    the platform's 429 and its ``retry_after`` cover that rare case).
    """

    def __init__(
        self,
        *,
        interval_for: Callable[[str], float],
        per_second: int | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._interval_for = interval_for
        self._per_second = per_second
        self._now = monotonic
        self._sleep = sleep
        self._last: OrderedDict[str, float] = OrderedDict()
        self._reserved: list[float] = []  # send times of the last second and ahead, sorted

    async def wait(self, chat_id: str) -> None:
        """Return when the next message to ``chat_id`` may go."""
        now = self._now()
        at = self._reserve(chat_id, now)
        if at > now:
            await self._sleep(at - now)

    def _reserve(self, chat_id: str, now: float) -> float:
        # No await in here: one event loop runs it to the end, so it needs no lock.
        last = self._last.get(chat_id)
        at = now if last is None else max(now, last + self._interval_for(chat_id))
        if self._per_second is not None:
            del self._reserved[: bisect.bisect_right(self._reserved, now - 1.0)]
            while True:
                window = self._reserved[
                    bisect.bisect_right(self._reserved, at - 1.0) : bisect.bisect_right(
                        self._reserved, at
                    )
                ]
                if len(window) < self._per_second:
                    break
                at = window[-self._per_second] + 1.0
            bisect.insort(self._reserved, at)
        self._last[chat_id] = at
        self._last.move_to_end(chat_id)
        while len(self._last) > _MAX_CHATS:
            self._last.popitem(last=False)
        return at
