"""Telegram's sending limits, kept before the API has to say 429.

About one message a second in a chat, twenty a minute in a group, thirty a second over
all chats (Bot API FAQ). Sends wait their turn here; a 429 that still comes is honoured by
the delivery engine with its ``retry_after``.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable

PRIVATE_INTERVAL_S = 1.0
GROUP_INTERVAL_S = 3.0  # 20 a minute
GLOBAL_PER_SECOND = 30
_MAX_CHATS = 10_000


class SendPacer:
    """Waits until a send to ``chat_id`` is within Telegram's limits."""

    def __init__(
        self,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._now = monotonic
        self._sleep = sleep
        self._last: OrderedDict[str, float] = OrderedDict()
        self._recent: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def wait(self, chat_id: str) -> None:
        """Return when the next message to ``chat_id`` may go."""
        async with self._lock:
            interval = GROUP_INTERVAL_S if chat_id.startswith("-") else PRIVATE_INTERVAL_S
            now = self._now()
            last = self._last.get(chat_id)
            delay = 0.0 if last is None else max(0.0, last + interval - now)
            while self._recent and self._recent[0] <= now - 1.0:
                self._recent.popleft()
            if len(self._recent) >= GLOBAL_PER_SECOND:
                delay = max(delay, self._recent[0] + 1.0 - now)
            if delay > 0:
                await self._sleep(delay)
            sent_at = self._now()
            self._last[chat_id] = sent_at
            self._last.move_to_end(chat_id)
            while len(self._last) > _MAX_CHATS:
                self._last.popitem(last=False)
            self._recent.append(sent_at)
