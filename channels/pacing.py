"""Sending limits kept before a platform has to answer 429.

A ``SendPacer`` spaces the messages to one chat by ``interval_for(chat_id)`` and, when
``per_second`` is set, all messages by a global rate. Sends wait their turn here; a 429
that still comes is honoured by the delivery engine with its ``retry_after``. Shared by
the adapters (it is not an adapter); each one configures its platform's figures.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable

_MAX_CHATS = 10_000


class SendPacer:
    """Waits until a send to ``chat_id`` is within the platform's limits."""

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
        self._recent: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def wait(self, chat_id: str) -> None:
        """Return when the next message to ``chat_id`` may go."""
        async with self._lock:
            now = self._now()
            last = self._last.get(chat_id)
            delay = 0.0 if last is None else max(0.0, last + self._interval_for(chat_id) - now)
            if self._per_second is not None:
                while self._recent and self._recent[0] <= now - 1.0:
                    self._recent.popleft()
                if len(self._recent) >= self._per_second:
                    delay = max(delay, self._recent[0] + 1.0 - now)
            if delay > 0:
                await self._sleep(delay)
            sent_at = self._now()
            self._last[chat_id] = sent_at
            self._last.move_to_end(chat_id)
            while len(self._last) > _MAX_CHATS:
                self._last.popitem(last=False)
            if self._per_second is not None:
                self._recent.append(sent_at)
