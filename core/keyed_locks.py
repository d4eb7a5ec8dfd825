"""One lock per conversation: its messages are handled in order, others run concurrently.

``asyncio.Lock`` wakes waiters first-come first-served, so messages of one conversation
are handled in arrival order. A task that already holds a key's lock may enter it again
(an ``/approve`` typed in the conversation it resumes); that is tracked in a context
variable, so it follows the task and never leaks into another one.

With ``shared`` locks (several replicas on one PostgreSQL), a key is also held across
replicas: first this process's lock (arrival order here), then the shared one, waited for
by polling while another replica handles that conversation.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar

from core.storage.shared_locks import SharedLocks

# Polling a shared lock another replica holds: from 5 ms up to 200 ms between tries.
_FIRST_POLL_S, _MAX_POLL_S = 0.005, 0.2

_held: ContextVar[frozenset[str]] = ContextVar("switchboard_held_locks", default=frozenset())


class KeyedLocks:
    """Locks created on first use and dropped when nobody holds or waits for them."""

    def __init__(self, *, shared: SharedLocks | None = None, namespace: str = "key") -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._shared = shared
        self._namespace = namespace

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
                if self._shared is None:
                    yield
                else:
                    async with _hold_shared(self._shared, f"{self._namespace}:{key}"):
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


@asynccontextmanager
async def _hold_shared(shared: SharedLocks, name: str) -> AsyncIterator[None]:
    pause = _FIRST_POLL_S
    while not await shared.try_acquire(name):
        await asyncio.sleep(pause)
        pause = min(pause * 2, _MAX_POLL_S)
    try:
        yield
    finally:
        await shared.release(name)
