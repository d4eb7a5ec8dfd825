"""What every HTTP provider shares: its options, and how HTTP failures become our errors.

Each provider module (``openai``, ``anthropic`` ...) keeps its own wire format in private
pydantic models; this module only knows HTTP. A provider is built by a factory
``(ProviderOptions, httpx.AsyncClient) -> Provider``: the client is shared per host and
owned by the ``ProviderManager``, so tests and the manager inject it.
"""

from __future__ import annotations

import contextlib
import email.utils
import functools
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC

import httpx
from httpx_sse import EventSource

from core.errors import (
    ContextTooLong,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderConnectionError,
    ProviderError,
    ProviderOverloaded,
    ProviderRateLimited,
    ProviderServerError,
    ProviderStreamBroken,
    ProviderTimeout,
)
from core.ports import Provider

# The longest piece of a provider's own error text we pass on (it may be a whole HTML page).
_MAX_DETAIL = 300
_CONTEXT_OVERFLOW = re.compile(
    r"context[_ ]length|context window|maximum context|prompt is too long|too many tokens"
    r"|input is too long|exceeds the (?:maximum|context)|token limit",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class ProviderOptions:
    """Everything a provider needs to talk to its API, resolved from the config."""

    name: str
    type_name: str
    base_url: str
    api_key: str | None = field(default=None, repr=False)
    default_model: str | None = None
    timeout: httpx.Timeout = field(default_factory=lambda: httpx.Timeout(60.0, connect=10.0))
    headers: Mapping[str, str] = field(default_factory=dict)
    models: tuple[str, ...] = ()
    # Anthropic requires max_tokens on every request; others use it when the request has none.
    default_max_tokens: int = 4096

    def model_for(self, requested: str | None) -> str:
        """The model a request goes to: the one asked for, else the default, else an error."""
        model = requested or self.default_model
        if not model:
            raise ProviderBadRequest(
                f"provider {self.name!r} has no default_model: name a model in the request "
                f"or set providers.{self.name}.default_model",
                provider=self.name,
            )
        return model

    def url(self, path: str) -> httpx.URL:
        """``base_url`` joined with ``path`` (which starts with ``/``), parsed once.

        httpx parses a URL given as text on every request (a tenth of a request's CPU in
        ``bench/provider_overhead``); a parsed ``httpx.URL`` is reused as it is.
        """
        return _parsed_url(self.base_url.rstrip("/") + path)


@functools.lru_cache(maxsize=1024)
def _parsed_url(url: str) -> httpx.URL:
    return httpx.URL(url)


ProviderFactory = Callable[[ProviderOptions, httpx.AsyncClient], Provider]


@contextlib.asynccontextmanager
async def connect_sse(
    client: httpx.AsyncClient,
    url: httpx.URL,
    *,
    content: bytes,
    headers: Mapping[str, str],
    http_timeout: httpx.Timeout,
) -> AsyncIterator[EventSource]:
    """POST and read server-sent events: ``httpx_sse.aconnect_sse`` for a parsed URL."""
    sse_headers = {**headers, "Accept": "text/event-stream", "Cache-Control": "no-store"}
    async with client.stream(
        "POST", url, content=content, headers=sse_headers, timeout=http_timeout
    ) as response:
        yield EventSource(response)


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms``, ``Retry-After`` (seconds or HTTP date)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    millis = lowered.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else time.time()
    return max(0.0, when.timestamp() - current)


def looks_like_context_overflow(message: str) -> bool:
    """True when a provider's 4xx text says the prompt does not fit the context window."""
    return bool(_CONTEXT_OVERFLOW.search(message))


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def error_for_status(
    *,
    provider: str,
    status: int,
    detail: str,
    retry_after: float | None = None,
    overloaded: bool = False,
    context_too_long: bool | None = None,
) -> ProviderError:
    """The error for an HTTP failure status; ``detail`` is the provider's own message.

    ``overloaded`` marks a 5xx the API documents as overload (Anthropic's 529, an
    ``overloaded_error`` type); ``context_too_long`` overrides the text heuristic when the
    API gives a machine code for it.
    """
    detail = _short(detail) or f"HTTP {status}"
    message = f"{provider}: {detail} (HTTP {status})"
    if status in (401, 403):
        return ProviderAuthError(
            f"{message}: check providers.{provider}.api_key", provider=provider
        )
    if status == 429:
        return ProviderRateLimited(message, provider=provider, retry_after=retry_after)
    if overloaded or status == 529:
        return ProviderOverloaded(message, provider=provider, retry_after=retry_after)
    if status == 408:
        return ProviderTimeout(message, provider=provider)
    if 400 <= status < 500:
        too_long = (
            context_too_long
            if context_too_long is not None
            else looks_like_context_overflow(detail)
        )
        if too_long:
            return ContextTooLong(message, provider=provider)
        return ProviderBadRequest(message, provider=provider)
    return ProviderServerError(message, provider=provider)


def error_for_transport(provider: str, exc: httpx.HTTPError) -> ProviderError:
    """The error for an exception httpx raised while connecting, sending or reading."""
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        kind = "connecting" if isinstance(exc, httpx.ConnectTimeout) else "waiting for an answer"
        return ProviderTimeout(f"{provider}: timed out {kind} ({reason})", provider=provider)
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.DecodingError):
        return ProviderStreamBroken(
            f"{provider}: the connection broke mid-answer ({reason})", provider=provider
        )
    return ProviderConnectionError(f"{provider}: cannot connect ({reason})", provider=provider)


def malformed(provider: str, what: str) -> ProviderServerError:
    """The error for an answer that is not what the API documents."""
    return ProviderServerError(
        f"{provider}: malformed answer from the API ({what})", provider=provider
    )


def broken_stream(provider: str, what: str) -> ProviderStreamBroken:
    """The error for a stream that ended early, was malformed, or carried an error event."""
    return ProviderStreamBroken(f"{provider}: the stream broke ({what})", provider=provider)


def monotonic_ms(start: float) -> float:
    """Milliseconds since ``start`` (a ``time.perf_counter()`` value), rounded to 0.01."""
    return round((time.perf_counter() - start) * 1000, 2)
