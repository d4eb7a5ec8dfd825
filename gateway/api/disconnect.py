"""Stop a streaming answer as soon as its client goes away.

A stream that only noticed the disconnect between two events would keep waiting on a
slow or stalled provider for nothing. Here a watcher task waits for the ASGI
``http.disconnect`` and cancels the streaming task at once; the caller's ``finally``
then closes the provider's stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.types import Receive


@dataclass
class _Watch:
    """Shared by a stream and its disconnect watcher."""

    task: asyncio.Task[object]
    done: bool = False
    client_gone: bool = False


async def _watch_disconnect(receive: Receive, watch: _Watch) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    if not watch.done:
        watch.client_gone = True
        watch.task.cancel()


async def unless_disconnected(receive: Receive, work: Callable[[], Awaitable[None]]) -> bool:
    """Run ``work()``; cancel it if the client disconnects first. True when it left.

    Call it once the request body has been read: the next ASGI message is then the
    disconnect (or the end of the response). A cancellation from elsewhere (shutdown)
    propagates as usual.
    """
    task = asyncio.current_task()
    if task is None:  # pragma: no cover - always inside a task under an ASGI server
        raise RuntimeError("a stream must run in a task")
    watch = _Watch(task)
    watcher = asyncio.create_task(_watch_disconnect(receive, watch))
    try:
        await work()
        return False
    except asyncio.CancelledError:
        if not watch.client_gone or task.uncancel() > 0:
            raise
        return True
    finally:
        watch.done = True
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
