"""What the provider layer reports as it works: calls, retries and fallbacks.

``ProviderManager`` and ``GuardedProvider`` call a ``ProviderObserver`` at each event; the
gateway implements one that feeds its Prometheus metrics, and everything else gets the
no-op default. Core knows nothing of Prometheus: it only says what happened.

A *call* is one request the manager hands to one provider, retries included: it ends
with an answer (``error=None``, the model that answered and its token usage) or with the
class of the error that ended it (``error_class``). A retry is another attempt within a
call (after a rate limit or an overload); a fallback moves a request to the next provider.
Observers are called on the event loop, in line with the request: they must be cheap and
must not raise.
"""

from __future__ import annotations

from typing import Literal, Protocol

from core.errors import (
    CircuitOpen,
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
    ProviderUnavailable,
)
from core.types import Usage

CallMode = Literal["chat", "stream"]

# Most specific first: ProviderOverloaded is a ProviderRateLimited, ContextTooLong a
# ProviderBadRequest, and every *Unavailable a ProviderUnavailable.
_CLASSES: tuple[tuple[type[ProviderError], str], ...] = (
    (ProviderOverloaded, "overloaded"),
    (ProviderRateLimited, "rate_limit"),
    (ProviderServerError, "server"),
    (ProviderTimeout, "timeout"),
    (ProviderConnectionError, "connection"),
    (ProviderStreamBroken, "stream_broken"),
    (CircuitOpen, "circuit_open"),
    (ProviderUnavailable, "unavailable"),
    (ProviderAuthError, "auth"),
    (ContextTooLong, "context_too_long"),
    (ProviderBadRequest, "bad_request"),
)
ERROR_CLASSES = tuple(name for _, name in _CLASSES) + ("other",)


def error_class(exc: ProviderError) -> str:
    """The short class of a provider error: ``rate_limit``, ``server``, ``timeout`` ..."""
    for kind, name in _CLASSES:
        if isinstance(exc, kind):
            return name
    return "other"


class ProviderObserver(Protocol):
    """Told about every provider call, retry and fallback (see the module doc)."""

    def call_finished(
        self,
        *,
        provider: str,
        mode: CallMode,
        seconds: float,
        error: str | None,
        model: str | None = None,
        usage: Usage | None = None,
    ) -> None:
        """A call ended: with an answer (``error`` None) or with an error of that class."""
        ...

    def retried(self, *, provider: str, error: str) -> None:
        """Another attempt within a call, after an error of class ``error``."""
        ...

    def fell_back(self, *, provider: str, to: str, error: str) -> None:
        """A request moved from ``provider`` to ``to`` after an error of class ``error``."""
        ...


class NoObserver:
    """The default observer: notices nothing."""

    def call_finished(
        self,
        *,
        provider: str,
        mode: CallMode,
        seconds: float,
        error: str | None,
        model: str | None = None,
        usage: Usage | None = None,
    ) -> None:
        """Nothing."""

    def retried(self, *, provider: str, error: str) -> None:
        """Nothing."""

    def fell_back(self, *, provider: str, to: str, error: str) -> None:
        """Nothing."""


NO_OBSERVER = NoObserver()
