"""``Annotated`` dependencies shared by the route modules."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    """The runtime the app was built with (set by the lifespan).

    ``async`` on purpose: FastAPI runs a plain ``def`` dependency in a worker thread,
    which costs more than the whole route on the hot path.
    """
    runtime: Runtime = request.app.state.runtime
    return runtime


def runtime_of(request: Request) -> Runtime:
    """The runtime, for routes that take the raw ``Request`` (the hot path)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
