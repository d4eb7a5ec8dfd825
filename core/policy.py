"""Access policy: who may talk to the assistant, how often, and which tools a turn gets.

An identity (``platform:user_id``) is let in when it is not in ``[access] deny``, is in
``[access] allow`` (or that list is empty) and its channel's own ``allow`` list (user ids of
that platform; empty: everyone) names it. The rate limit is a token bucket per identity,
kept in memory: it protects the model from one chatty user between restarts, which is what
it is for; durable per-user budgets over days are a separate, persisted mechanism.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from core.config import AccessSection, GatewayConfig
from core.types import Sender

Monotonic = Callable[[], float]
# Buckets of identities not seen for a while are forgotten; a full bucket is the default.
_MAX_BUCKETS = 100_000


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a message is not handled, in words the sender can act on."""

    code: str
    message: str
    retry_after_s: float | None = None
    # Extra facts for the audit record (which budget, its limit ...); never secrets.
    details: Mapping[str, object] = field(default_factory=dict)


def channel_allowlist(config: GatewayConfig, platform: str) -> tuple[str, ...]:
    """User ids ``[channels.PLATFORM] allow`` lets in (empty: everyone)."""
    section = getattr(config.channels, platform, None)
    allow: tuple[str, ...] = getattr(section, "allow", ())
    return allow


def check_access(config: GatewayConfig, sender: Sender) -> Refusal | None:
    """None when ``sender`` may use the assistant, else the reason."""
    access = config.access
    identity = sender.identity
    if identity in access.deny:
        return Refusal("access_denied", f"{identity} is blocked from using this assistant.")
    if access.allow and identity not in access.allow:
        return Refusal(
            "access_denied",
            f"{identity} may not use this assistant. Ask an operator to add it to "
            "[access] allow in the gateway's config.",
        )
    allow = channel_allowlist(config, sender.platform)
    if allow and sender.user_id not in allow:
        return Refusal(
            "access_denied",
            f"{identity} may not use this assistant here. Ask an operator to add "
            f"{sender.user_id!r} to [channels.{sender.platform}] allow.",
        )
    return None


class RateLimiter:
    """A token bucket per identity: ``rate_per_minute`` on average, bursts of ``burst``."""

    def __init__(self, *, monotonic: Monotonic = time.monotonic) -> None:
        self._now = monotonic
        # identity -> (tokens, last refill time); ordered by last use, oldest first.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, identity: str, settings: AccessSection) -> Refusal | None:
        """Spend one message of ``identity``'s allowance; a Refusal when it has none left."""
        if settings.rate_per_minute == 0:
            return None
        rate = settings.rate_per_minute / 60.0
        capacity = float(settings.burst)
        now = self._now()
        tokens, last = self._buckets.pop(identity, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * rate)
        if tokens < 1.0:
            self._buckets[identity] = (tokens, now)
            wait = math.ceil((1.0 - tokens) / rate)
            return Refusal(
                "rate_limited",
                f"Slow down: at most {settings.rate_per_minute} messages a minute. "
                f"Try again in {wait} s.",
                retry_after_s=float(wait),
            )
        self._buckets[identity] = (tokens - 1.0, now)
        while len(self._buckets) > _MAX_BUCKETS:
            self._buckets.popitem(last=False)
        return None
