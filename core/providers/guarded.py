"""One provider with its safeguards: circuit breaker, concurrency limit, retries, deadline.

The ``ProviderManager`` routes between guarded providers; everything that concerns a
single provider happens here, in this order: the breaker admits the call, the limiter
queues it, rate-limit and overload errors are retried (Retry-After, else backoff with
jitter) within ``max_retries`` and the total deadline ``timeout_s``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from core.errors import (
    ProviderError,
    ProviderOverloaded,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from core.ports import Provider
from core.providers.base import ProviderOptions, broken_stream
from core.providers.observer import NO_OBSERVER, CallMode, ProviderObserver, error_class
from core.providers.resilience import CircuitBreaker, Random, retry_pause
from core.types import (
    ChatRequest,
    ChatResult,
    HealthStatus,
    StreamDone,
    StreamEvent,
    StreamFailed,
    Usage,
)

log = logging.getLogger("switchboard.providers")

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class ProviderSpec:
    """One provider as the config or a registration describes it."""

    options: ProviderOptions
    max_retries: int = 2
    timeout_s: float = 60.0
    max_concurrency: int = 32
    source: Literal["config", "registered"] = "config"

    @property
    def name(self) -> str:
        """The provider's name."""
        return self.options.name


@dataclass(frozen=True)
class RetryTiming:
    """How retries wait: the injectable sleep and jitter, and the first backoff step."""

    sleep: Sleep = asyncio.sleep
    rng: Random = lambda: 0.5
    backoff_s: float = 0.5


async def aclose(stream: AsyncIterator[StreamEvent]) -> None:
    """Close a stream early (an async generator has ``aclose``; a plain iterator needs none)."""
    close = getattr(stream, "aclose", None)
    if close is not None:
        await close()


def _unwell(exc: ProviderError) -> bool:
    # What the circuit breaker counts: the provider, not the request, is the problem.
    return isinstance(exc, ProviderUnavailable | ProviderOverloaded)


@dataclass
class GuardedProvider:
    """A provider, its breaker and limiter, and its cached models and health."""

    spec: ProviderSpec
    provider: Provider
    breaker: CircuitBreaker
    limiter: asyncio.Semaphore
    models: tuple[float, list[str]] | None = None
    health: tuple[float, HealthStatus] | None = None
    health_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    observer: ProviderObserver = NO_OBSERVER

    @property
    def name(self) -> str:
        """The provider's name."""
        return self.spec.name

    async def chat(self, request: ChatRequest, timing: RetryTiming) -> ChatResult:
        """A complete answer, retried on rate limits within the deadline."""
        started = asyncio.get_running_loop().time()
        try:
            result = await self._chat(request, timing)
        except ProviderError as exc:
            self._observe("chat", started, error=error_class(exc))
            raise
        self._observe("chat", started, model=result.model, usage=result.usage)
        return result

    async def _chat(self, request: ChatRequest, timing: RetryTiming) -> ChatResult:
        self.breaker.before_call()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.spec.timeout_s
        attempt = 0
        try:
            async with asyncio.timeout_at(deadline), self.limiter:
                while True:
                    try:
                        result = await self.provider.chat(request)
                    except ProviderRateLimited as exc:
                        pause = self._pause(attempt, exc, timing)
                        if pause is None or loop.time() + pause >= deadline:
                            raise
                        attempt += 1
                        self.observer.retried(provider=self.name, error=error_class(exc))
                        await timing.sleep(pause)
                        continue
                    break
        except TimeoutError:
            timeout = self.timeout_error()
            self._failed(timeout)
            raise timeout from None
        except ProviderError as exc:
            self._failed(exc)
            raise
        except BaseException:
            self.breaker.release_probe()
            raise
        self.breaker.record_success()
        return result

    async def stream(self, request: ChatRequest, timing: RetryTiming) -> AsyncIterator[StreamEvent]:
        """Events; errors before the first one raise, later ones end with ``StreamFailed``.

        One generator from the first event to the last (no inner relay generator): each
        layer of ``async for ... yield`` costs every event of every stream its own step.
        """
        started = asyncio.get_running_loop().time()
        try:
            event, upstream = await self._first_event(request, timing)
        except ProviderError as exc:
            self._observe("stream", started, error=error_class(exc))
            raise
        try:
            while True:
                yield event
                if isinstance(event, StreamDone):
                    self.breaker.record_success()
                    self._observe("stream", started, model=event.model, usage=event.usage)
                    return
                try:
                    event = await anext(upstream)
                except StopAsyncIteration:
                    raise broken_stream(self.name, "it ended without its end event") from None
        except ProviderError as exc:
            self._failed(exc)
            self._observe("stream", started, error=error_class(exc))
            log.warning(
                "event=stream_broken provider=%s code=%s problem=%r",
                self.name,
                exc.code,
                exc.message,
            )
            yield StreamFailed(code=exc.code, message=exc.message, provider=self.name)
        finally:
            try:
                await aclose(upstream)
            finally:
                self.limiter.release()

    async def _first_event(
        self, request: ChatRequest, timing: RetryTiming
    ) -> tuple[StreamEvent, AsyncIterator[StreamEvent]]:
        """The upstream's first event and the rest of it; the limiter is held on return."""
        self.breaker.before_call()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.spec.timeout_s
        attempt = 0
        try:
            if self.limiter.locked():  # wait_for runs the wait as a task: only when waiting
                await asyncio.wait_for(self.limiter.acquire(), timeout=self.spec.timeout_s)
            else:
                await self.limiter.acquire()
        except TimeoutError:
            self.breaker.release_probe()
            raise self.timeout_error() from None
        try:
            while True:
                upstream = self.provider.stream(request)
                try:
                    async with asyncio.timeout_at(deadline):
                        return await anext(upstream), upstream
                except StopAsyncIteration:
                    error = broken_stream(self.name, "it ended before any event")
                    self._failed(error)
                    raise error from None
                except TimeoutError:
                    await aclose(upstream)
                    timeout = self.timeout_error()
                    self._failed(timeout)
                    raise timeout from None
                except ProviderRateLimited as exc:
                    await aclose(upstream)
                    pause = self._pause(attempt, exc, timing)
                    if pause is None or loop.time() + pause >= deadline:
                        self._failed(exc)
                        raise
                    attempt += 1
                    self.observer.retried(provider=self.name, error=error_class(exc))
                    await timing.sleep(pause)
                except ProviderError as exc:
                    await aclose(upstream)
                    self._failed(exc)
                    raise
        except BaseException:
            self.limiter.release()
            raise

    def _pause(self, attempt: int, exc: ProviderRateLimited, timing: RetryTiming) -> float | None:
        if attempt >= self.spec.max_retries:
            return None
        pause = retry_pause(
            attempt, retry_after=exc.retry_after, backoff_s=timing.backoff_s, rng=timing.rng
        )
        log.info(
            "event=provider_retry provider=%s code=%s attempt=%d pause_s=%.2f",
            self.name,
            exc.code,
            attempt + 1,
            pause,
        )
        return pause

    def _observe(
        self,
        mode: CallMode,
        started: float,
        *,
        error: str | None = None,
        model: str | None = None,
        usage: Usage | None = None,
    ) -> None:
        seconds = asyncio.get_running_loop().time() - started
        self.observer.call_finished(
            provider=self.name, mode=mode, seconds=seconds, error=error, model=model, usage=usage
        )

    def _failed(self, exc: ProviderError) -> None:
        if _unwell(exc):
            self.breaker.record_failure()
        else:
            self.breaker.release_probe()

    def timeout_error(self) -> ProviderTimeout:
        """The error for a call that passed ``timeout_s``."""
        return ProviderTimeout(
            f"{self.name}: no answer within {self.spec.timeout_s:g}s "
            f"(providers.{self.name}.timeout_s)",
            provider=self.name,
        )
