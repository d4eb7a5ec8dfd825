"""Owned background tasks: each one is logged, restarted with backoff, and stopped on shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("switchboard.supervisor")

TaskFactory = Callable[[], Awaitable[None]]


class Supervisor:
    """Runs long-lived coroutines; a crashed one is restarted after a growing pause."""

    def __init__(self, *, initial_backoff_s: float = 0.5, max_backoff_s: float = 30.0) -> None:
        self._initial = initial_backoff_s
        self._max = max_backoff_s
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.restarts: dict[str, int] = {}

    def start(self, name: str, factory: TaskFactory) -> None:
        """Run ``factory()`` under supervision as ``name``."""
        if name in self._tasks:
            raise ValueError(f"a task named {name!r} is already supervised")
        self.restarts[name] = 0
        self._tasks[name] = asyncio.create_task(self._keep_running(name, factory), name=name)

    async def _keep_running(self, name: str, factory: TaskFactory) -> None:
        backoff = self._initial
        while True:
            try:
                await factory()
                log.info("task=%s event=finished", name)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise asyncio.CancelledError from None  # being stopped: no restart
                self.restarts[name] += 1
                log.exception(
                    "task=%s event=crashed restart_in_s=%.1f restarts=%d",
                    name,
                    backoff,
                    self.restarts[name],
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max)

    def running(self) -> list[str]:
        """Names of the tasks still running."""
        return [name for name, task in self._tasks.items() if not task.done()]

    async def stop(self) -> None:
        """Cancel every task and wait for them to end."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
