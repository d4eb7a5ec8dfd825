"""Tools the model may call: the registry and the built-ins, each off until enabled.

``build_tools(config.tools, notes=..., http_client=...)`` registers exactly the built-ins
switched on in ``[tools.*]``; ``ToolRegistry.specs()`` is what the model is offered and
``ToolRegistry.run()`` validates the arguments against the tool's JSON schema, runs it
and caps the text that goes back to the model. Levels: ``current_time``, ``remember`` and
``recall`` low, ``http_get`` medium, ``shell`` critical.
"""

from __future__ import annotations

import httpx

from core.config import ToolsSection
from core.ports import NotesStore
from core.tools.current_time import Clock, CurrentTime, utc_now
from core.tools.http_get import HttpGet
from core.tools.notes import Recall, Remember
from core.tools.registry import RESULT_MAX_BYTES, ToolRegistry
from core.tools.shell import Shell

__all__ = [
    "RESULT_MAX_BYTES",
    "CurrentTime",
    "HttpGet",
    "Recall",
    "Remember",
    "Shell",
    "ToolRegistry",
    "build_tools",
]


def build_tools(
    settings: ToolsSection,
    *,
    notes: NotesStore,
    clock: Clock = utc_now,
    http_client: httpx.AsyncClient | None = None,
) -> ToolRegistry:
    """A registry with exactly the enabled built-ins.

    ``http_client`` is the shared client ``http_get`` sends through; it is required when
    that tool is enabled (the gateway's lifespan owns and closes it).
    """
    registry = ToolRegistry()
    if settings.current_time.enabled:
        registry.register(CurrentTime(clock=clock))
    if settings.remember.enabled:
        registry.register(Remember(notes=notes, clock=clock))
    if settings.recall.enabled:
        registry.register(Recall(notes=notes))
    if settings.http_get.enabled:
        if http_client is None:
            raise ValueError("tools.http_get is enabled: build_tools needs an http_client")
        registry.register(HttpGet(settings.http_get, client=http_client))
    if settings.shell.enabled:
        registry.register(Shell(settings.shell))
    return registry
