"""The ProviderManager: any conversation answered by any configured LLM.

Routing: a request naming a provider (``provider="claude"`` or ``model="claude/<model>"``)
goes to that provider only; otherwise to the default provider, then along the fallbacks.

Each provider guards itself (``core.providers.guarded``: breaker, limiter, retries,
deadline). The next provider is tried on unavailability (server error, timeout,
connection, broken stream, open circuit), auth errors and exhausted rate limits, never
on a bad request.

A stream falls back only before its first event; once text was sent, a failure ends the
stream with a ``StreamFailed`` event instead of a silent truncation.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from core.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderUnavailable,
)
from core.providers.clients import ClientPool
from core.providers.guarded import GuardedProvider, ProviderSpec, RetryTiming, Sleep, aclose
from core.providers.observer import NO_OBSERVER, ProviderObserver, error_class
from core.providers.registry import provider_factory
from core.providers.resilience import CircuitBreaker, Clock, Random
from core.suggest import did_you_mean
from core.types import ChatRequest, ChatResult, HealthStatus, StreamEvent

log = logging.getLogger("switchboard.providers")


@dataclass(frozen=True)
class OpenedStream:
    """A stream whose first event has arrived, and who is answering."""

    first: StreamEvent
    events: AsyncIterator[StreamEvent]
    provider: str
    model: str


@dataclass(frozen=True)
class RoutingPolicy:
    """``[routing]``: fallbacks, circuit breaker, retry backoff and cache lifetimes."""

    fallbacks: tuple[str, ...] = ()
    circuit_failures: int = 5
    circuit_cooldown_s: float = 30.0
    retry_backoff_s: float = 0.5
    health_cache_s: float = 10.0
    models_cache_s: float = 300.0


def falls_back(exc: ProviderError) -> bool:
    """Whether the next provider should be tried after ``exc``."""
    return isinstance(exc, ProviderUnavailable | ProviderAuthError | ProviderRateLimited)


class ProviderManager:
    """Owns every provider, its HTTP client, breaker, limiter and caches.

    ``observer`` hears of every call, retry and fallback (the gateway's metrics).
    """

    def __init__(
        self,
        *,
        clients: ClientPool | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rng: Random = random.random,
        observer: ProviderObserver = NO_OBSERVER,
    ) -> None:
        self._clients = clients or ClientPool()
        self._observer = observer
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        self._slots: dict[str, GuardedProvider] = {}
        self._policy = RoutingPolicy()
        self._timing = RetryTiming(sleep=sleep, rng=rng)
        self._default: str | None = None

    # -- configuration -----------------------------------------------------------------

    async def apply(
        self, specs: Sequence[ProviderSpec], *, policy: RoutingPolicy, default: str | None
    ) -> None:
        """Make ``specs`` the providers in force; unchanged ones keep their state."""
        old = self._slots
        slots: dict[str, GuardedProvider] = {}
        for spec in specs:
            kept = old.get(spec.name)
            same_policy = (policy.circuit_failures, policy.circuit_cooldown_s) == (
                self._policy.circuit_failures,
                self._policy.circuit_cooldown_s,
            )
            if kept is not None and kept.spec == spec and same_policy:
                slots[spec.name] = kept
            else:
                slots[spec.name] = self._build(spec, policy)
        self._slots, self._policy = slots, policy
        self._timing = RetryTiming(
            sleep=self._sleep, rng=self._rng, backoff_s=policy.retry_backoff_s
        )
        self._default = default if default in slots else next(iter(slots), None)
        for name, slot in old.items():
            if slots.get(name) is not slot:
                await slot.provider.close()
        await self._clients.retain({s.spec.options.base_url for s in slots.values()})

    def _build(self, spec: ProviderSpec, policy: RoutingPolicy) -> GuardedProvider:
        factory = provider_factory(spec.options.type_name)
        client = self._clients.client_for(spec.options.base_url)
        return GuardedProvider(
            spec=spec,
            provider=factory(spec.options, client),
            breaker=CircuitBreaker(
                provider=spec.name,
                failure_threshold=policy.circuit_failures,
                cooldown_s=policy.circuit_cooldown_s,
                clock=self._clock,
            ),
            limiter=asyncio.Semaphore(spec.max_concurrency),
            observer=self._observer,
        )

    def set_default(self, name: str) -> None:
        """Make ``name`` the default provider."""
        self._slot(name)
        self._default = name

    @property
    def default_name(self) -> str | None:
        """The provider a request without ``provider`` goes to first."""
        return self._default

    @property
    def fallbacks(self) -> tuple[str, ...]:
        """The fallback chain in force."""
        return self._policy.fallbacks

    def names(self) -> list[str]:
        """Configured and registered provider names, in order."""
        return list(self._slots)

    def spec(self, name: str) -> ProviderSpec:
        """The spec of ``name``; raises ``ProviderNotFound``."""
        return self._slot(name).spec

    def circuit_state(self, name: str) -> str:
        """``closed``, ``open`` or ``half_open``."""
        return self._slot(name).breaker.state.value

    def _slot(self, name: str) -> GuardedProvider:
        try:
            return self._slots[name]
        except KeyError:
            hint = did_you_mean(name, self._slots)
            known = ", ".join(self._slots) or "none"
            raise ProviderNotFound(
                f"no provider named {name!r}{hint} (configured: {known})"
            ) from None

    def route(self, *, provider: str | None, model: str | None) -> list[tuple[str, str | None]]:
        """The (provider, model) pairs to try in order for a request."""
        if provider:
            self._slot(provider)
            if model and model.startswith(provider + "/"):
                model = model[len(provider) + 1 :]
            return [(provider, model)]
        if model and "/" in model:
            prefix, rest = model.split("/", 1)
            if prefix in self._slots:
                return [(prefix, rest)]
        if self._default is None:
            raise ProviderNotFound("no provider is configured: add one under [providers.NAME]")
        chain: list[tuple[str, str | None]] = [(self._default, model)]
        for name in self._policy.fallbacks:
            if name in self._slots and name != self._default:
                chain.append((name, None))  # a fallback answers with its own default model
        return chain

    def record_fallback(self, *, provider: str, to: str, exc: ProviderError) -> None:
        """Tell the observer a request moved on from ``provider`` to ``to`` after ``exc``.

        Callers that walk ``route()`` themselves call it for each hop, as ``chat`` does.
        """
        self._observer.fell_back(provider=provider, to=to, error=error_class(exc))

    # -- answering ---------------------------------------------------------------------

    async def chat(self, request: ChatRequest, *, provider: str | None = None) -> ChatResult:
        """A complete answer from the first provider of the route that gives one."""
        route = self.route(provider=provider, model=request.model)
        for index, (name, model) in enumerate(route):
            try:
                return await self._slots[name].chat(
                    request.model_copy(update={"model": model}), self._timing
                )
            except ProviderError as exc:
                if index == len(route) - 1 or not falls_back(exc):
                    raise
                self.record_fallback(provider=name, to=route[index + 1][0], exc=exc)
                log.warning(
                    "event=provider_fallback provider=%s next=%s code=%s problem=%r",
                    name,
                    route[index + 1][0],
                    exc.code,
                    exc.message,
                )
        raise AssertionError("unreachable: the route is never empty")

    def stream(
        self, request: ChatRequest, *, provider: str | None = None
    ) -> AsyncIterator[StreamEvent]:
        """Normalized events; falls back only before the first event (see the module doc).

        Routing errors (an unknown provider) are raised by the first ``anext``, like every
        other failure to start.
        """
        return self._stream(request, provider)

    async def _stream(
        self, request: ChatRequest, provider: str | None
    ) -> AsyncIterator[StreamEvent]:
        opened = await self.open_stream(request, provider=provider)
        try:
            yield opened.first
            async for event in opened.events:
                yield event
        finally:
            await aclose(opened.events)

    async def open_stream(
        self, request: ChatRequest, *, provider: str | None = None
    ) -> OpenedStream:
        """A started stream: its first event, the rest, and which provider and model send it.

        For callers that must name the answering model before relaying the first event
        (the OpenAI-compatible endpoint puts it in every chunk). The caller closes
        ``events``. Falls back along the route until one provider produces a first event.
        """
        route = self.route(provider=provider, model=request.model)
        for index, (name, model) in enumerate(route):
            slot = self._slots[name]
            events = slot.stream(request.model_copy(update={"model": model}), self._timing)
            try:
                first = await anext(events)
            except ProviderError as exc:
                await aclose(events)
                if index == len(route) - 1 or not falls_back(exc):
                    raise
                self.record_fallback(provider=name, to=route[index + 1][0], exc=exc)
                log.warning(
                    "event=provider_fallback provider=%s next=%s code=%s stream=true",
                    name,
                    route[index + 1][0],
                    exc.code,
                )
                continue
            except BaseException:
                await aclose(events)
                raise
            answering = model or slot.spec.options.default_model or ""
            return OpenedStream(first=first, events=events, provider=name, model=answering)
        raise AssertionError("unreachable: the route is never empty")

    # -- catalogue and health ----------------------------------------------------------

    async def list_models(self, name: str, *, refresh: bool = False) -> list[str]:
        """Model ids of one provider: configured ``models``, else the API's (cached)."""
        slot = self._slot(name)
        if slot.spec.options.models:
            return list(slot.spec.options.models)
        now = self._clock()
        if not refresh and slot.models and now - slot.models[0] < self._policy.models_cache_s:
            return list(slot.models[1])
        async with asyncio.timeout(slot.spec.timeout_s):
            models = await slot.provider.list_models()
        slot.models = (now, models)
        return list(models)

    async def all_models(self) -> dict[str, list[str] | ProviderError]:
        """Every provider's models (or the error listing them gave)."""

        async def one(name: str) -> list[str] | ProviderError:
            try:
                return await self.list_models(name)
            except ProviderError as exc:
                return exc
            except TimeoutError:
                return self._slots[name].timeout_error()

        names = list(self._slots)
        results = await asyncio.gather(*(one(n) for n in names))
        return dict(zip(names, results, strict=True))

    async def health(self, name: str | None = None) -> dict[str, HealthStatus]:
        """Health of one or every provider; each probe is cached ``health_cache_s``."""
        names = [name] if name is not None else list(self._slots)
        for n in names:
            self._slot(n)
        results = await asyncio.gather(*(self._health_of(self._slots[n]) for n in names))
        return dict(zip(names, results, strict=True))

    def cached_health(self, name: str) -> HealthStatus | None:
        """The last probe result of ``name`` if still fresh, without probing."""
        slot = self._slot(name)
        if slot.health and self._clock() - slot.health[0] < self._policy.health_cache_s:
            return slot.health[1]
        return None

    async def _health_of(self, slot: GuardedProvider) -> HealthStatus:
        async with slot.health_lock:  # concurrent callers share one probe
            cached = self.cached_health(slot.spec.name)
            if cached is not None:
                return cached
            try:
                async with asyncio.timeout(min(slot.spec.timeout_s, 10.0)):
                    status = await slot.provider.health_check()
            except TimeoutError:
                status = HealthStatus(healthy=False, error="health probe timed out")
            slot.health = (self._clock(), status)
            return status

    async def close(self) -> None:
        """Close every provider and HTTP client."""
        for slot in self._slots.values():
            await slot.provider.close()
        self._slots = {}
        await self._clients.close()


__all__ = ["ProviderManager", "ProviderSpec", "RoutingPolicy", "falls_back"]
