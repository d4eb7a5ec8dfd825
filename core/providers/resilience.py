"""Retry pauses and the per-provider circuit breaker.

Written here rather than taken from a library (tenacity, pybreaker, aiobreaker): the
rules are specific (Retry-After wins over backoff, a pause that would pass the deadline is
not taken, half-open admits exactly one probe) and fit in a page, while the libraries
either do not know async or would hide these rules behind decorators.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

from core.errors import CircuitOpen

Clock = Callable[[], float]
Random = Callable[[], float]


def retry_pause(
    attempt: int, *, retry_after: float | None, backoff_s: float, rng: Random, cap_s: float = 30.0
) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first retry).

    The provider's own hint wins; otherwise exponential backoff with full jitter, so that
    many clients throttled at once do not come back at once.
    """
    if retry_after is not None:
        return min(retry_after, cap_s)
    ceiling = min(cap_s, backoff_s * (2.0**attempt))
    return ceiling * (0.5 + rng() / 2)


class CircuitState(enum.StrEnum):
    """closed: calls pass; open: calls are refused; half_open: one probe call passes."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens after ``failure_threshold`` failures in a row; probes again after ``cooldown_s``."""

    def __init__(
        self,
        *,
        provider: str,
        failure_threshold: int,
        cooldown_s: float,
        clock: Clock = time.monotonic,
    ) -> None:
        self.provider = provider
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> CircuitState:
        """The state now (an open circuit whose cooldown passed is half-open)."""
        if self._opened_at is None:
            return CircuitState.CLOSED
        if self._clock() - self._opened_at >= self.cooldown_s:
            return CircuitState.HALF_OPEN
        return CircuitState.OPEN

    @property
    def consecutive_failures(self) -> int:
        """Failures since the last success."""
        return self._failures

    def before_call(self) -> None:
        """Admit a call or raise ``CircuitOpen``; in half-open state only one probe passes."""
        state = self.state
        if state is CircuitState.CLOSED:
            return
        if state is CircuitState.HALF_OPEN and not self._probing:
            self._probing = True
            return
        opened_at = self._opened_at if self._opened_at is not None else self._clock()
        wait = max(0.0, self.cooldown_s - (self._clock() - opened_at))
        raise CircuitOpen(
            f"{self.provider}: skipped after {self._failures} failures in a row; "
            f"next probe in {wait:.0f}s",
            provider=self.provider,
        )

    def record_success(self) -> None:
        """A call succeeded: close the circuit."""
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def record_failure(self) -> None:
        """A call failed in a way that says the provider is unwell."""
        self._failures += 1
        if self._probing or self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
        self._probing = False

    def release_probe(self) -> None:
        """A probe ended without a verdict (e.g. a bad request): let the next call probe."""
        self._probing = False
