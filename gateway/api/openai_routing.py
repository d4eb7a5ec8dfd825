"""Which provider answers the ``model`` of a ``/v1`` request.

1. ``provider/model``, where ``provider`` is a configured provider: that provider only,
   with that model (``provider/`` alone: its ``default_model``).
2. A model id that exactly one provider lists (model listings are cached): that provider
   only. Ids may contain ``/`` themselves (``Qwen/Qwen2.5-7B`` on a vLLM server).
3. An id with a ``/`` that neither names a provider nor is listed by any: 404.
4. Anything else (an id no provider lists, or several do): the default provider with
   that model id, then the ``[routing] fallbacks``, each with its own default model.

The index of who lists what is rebuilt at most every ``ttl_s`` seconds and whenever the
set of providers changes; while one request rebuilds it, the others use the previous one.
A provider whose listing fails or takes longer than ``listing_wait_s`` lists nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from core.errors import NotFound, ProviderError, ProviderNotFound
from core.providers.manager import ProviderManager
from core.suggest import did_you_mean

log = logging.getLogger("switchboard.api")


@dataclass(frozen=True)
class Route:
    """Where a request goes: ``provider`` None means the default, then the fallbacks."""

    provider: str | None
    model: str | None


class ModelRouter:
    """Resolves ``model`` to a :class:`Route`, with a cached index of model listings."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        ttl_s: float = 60.0,
        listing_wait_s: float = 5.0,
    ) -> None:
        self._clock = clock
        self._ttl_s = ttl_s
        self._wait_s = listing_wait_s
        self._owners: Mapping[str, tuple[str, ...]] | None = None
        self._built_for: list[str] = []
        self._built_at = 0.0
        self._lock = asyncio.Lock()

    async def resolve(self, manager: ProviderManager, model: str) -> Route:
        """The route of ``model`` (rules in the module doc); raises ``ProviderNotFound``."""
        head, slash, rest = model.partition("/")
        names = manager.names()
        if slash and head in names:
            return Route(head, rest or None)
        owners = (await self._index(manager, names)).get(model, ())
        if len(owners) == 1:
            return Route(owners[0], model)
        if slash and not owners:
            hint = did_you_mean(head, names)
            raise ProviderNotFound(
                f"unknown model {model!r}: no provider is named {head!r}{hint} and none "
                f"lists that model (providers: {', '.join(names) or 'none'}; "
                "GET /v1/models lists every model)"
            )
        return Route(None, model)

    async def owners(self, manager: ProviderManager, model: str) -> tuple[str, ...]:
        """The providers whose listing has ``model``, in configuration order."""
        return (await self._index(manager, manager.names())).get(model, ())

    def _current(self, names: list[str]) -> Mapping[str, tuple[str, ...]] | None:
        """The index when it is fresh, or stale while another request rebuilds it."""
        owners = self._owners
        if owners is None or names != self._built_for:
            return None
        if self._lock.locked() or self._clock() - self._built_at < self._ttl_s:
            return owners
        return None

    async def _index(
        self, manager: ProviderManager, names: list[str]
    ) -> Mapping[str, tuple[str, ...]]:
        owners = self._current(names)
        if owners is not None:
            return owners
        async with self._lock:
            owners = self._owners
            fresh = owners is not None and names == self._built_for
            if owners is None or not fresh or self._clock() - self._built_at >= self._ttl_s:
                owners = await self._build(manager, names)
                self._owners, self._built_for, self._built_at = owners, list(names), self._clock()
            return owners

    async def _build(
        self, manager: ProviderManager, names: list[str]
    ) -> Mapping[str, tuple[str, ...]]:
        listings = await asyncio.gather(*(self._listing(manager, name) for name in names))
        owners: dict[str, dict[str, None]] = {}
        for name, models in zip(names, listings, strict=True):
            for model in models:
                owners.setdefault(model, {})[name] = None
        return {model: tuple(by) for model, by in owners.items()}

    async def _listing(self, manager: ProviderManager, name: str) -> list[str]:
        try:
            async with asyncio.timeout(self._wait_s):
                return await manager.list_models(name)
        except TimeoutError:
            problem = f"no answer within {self._wait_s:g} s"
        except (ProviderError, NotFound) as exc:
            problem = exc.message
        log.warning("event=model_listing_failed provider=%s problem=%r", name, problem)
        return []
