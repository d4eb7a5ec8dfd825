"""Connection health of one channel: what ``/api/channels`` and ``/readyz`` show.

Shared by every adapter (it is not an adapter): the state, since when, the consecutive
failures and the last error, logged on every change so a channel that keeps failing is
visible, never silently dead.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("switchboard.channels")


class ChannelHealth:
    """The state of one channel's connection."""

    def __init__(self, channel: str) -> None:
        self._channel = channel
        self.state = "starting"
        self.since: datetime | None = None
        self.last_error: str | None = None
        self.failures = 0

    @property
    def connected(self) -> bool:
        """True while the platform connection works."""
        return self.state.startswith("connected")

    def ok(self, state: str) -> None:
        """The connection works (``state`` starts with "connected")."""
        if self.state != state:
            log.info("event=channel_state channel=%s state=%r", self._channel, state)
            self.since = datetime.now(UTC)
        self.state = state
        self.failures = 0

    def failing(self, problem: str) -> None:
        """The connection failed; the adapter tries again."""
        self.failures += 1
        self.last_error = problem
        self.state = "reconnecting"
        log.warning(
            "event=channel_failing channel=%s failures=%d problem=%r",
            self._channel,
            self.failures,
            problem,
        )

    def stopped(self) -> None:
        """The channel was stopped on purpose."""
        self.state = "stopped"

    def as_dict(self) -> dict[str, Any]:
        """The fields every channel reports."""
        return {
            "state": self.state,
            "connected": self.connected,
            "since": self.since.isoformat() if self.since else None,
            "consecutive_failures": self.failures,
            "last_error": self.last_error,
        }
