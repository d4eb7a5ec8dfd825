"""One lock per conversation: its messages are handled in order, others run concurrently.

``asyncio.Lock`` wakes waiters first-come first-served, so messages of one conversation
are handled in arrival order. A task that already holds a key's lock may enter it again
(an ``/approve`` typed in the conversation it resumes); that is tracked in a context
variable, so it follows the task and never leaks into another one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar

_held: ContextVar[frozenset[str]] = ContextVar("switchboard_held_locks", default=frozenset())


class KeyedLocks:
    """Locks created on first use and dropped when nobody holds or waits for them."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold ``key``'s lock for the block (re-entrant within one task)."""
        held = _held.get()
        if key in held:
            yield
            return
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        token = _held.set(held | {key})
        try:
            async with lock:
                yield
        finally:
            _held.reset(token)
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def is_held(self, key: str) -> bool:
        """True when the current task holds ``key``'s lock."""
        return key in _held.get()
