"""An answer shown while it streams: one message, edited at a throttled rate.

Only adapters that can (``Previewing``) get one. Nothing is shown before ``interval_s``
has passed, so a quick answer arrives as one finished message; a slow one appears early
and grows. The finished answer, rendered for the platform, then replaces the preview
through the outbox (the reply item carries the preview's id as ``edit_message_id``), so the
answer itself is still delivered exactly once. A preview that fails is dropped quietly:
the answer does not depend on it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from core.types import ConversationKey, OutboundItem

log = logging.getLogger("switchboard.channels")

PREVIEW_INTERVAL_S = 1.0


@runtime_checkable
class Previewing(Protocol):
    """An adapter that can show a streaming answer."""

    async def preview(
        self, key: ConversationKey, text: str, *, message_id: str | None, in_reply_to: str | None
    ) -> str: ...


class StreamPreview:
    """Collects streamed text and keeps the preview message up to date."""

    def __init__(
        self,
        adapter: Previewing,
        *,
        key: ConversationKey,
        in_reply_to: str | None,
        interval_s: float = PREVIEW_INTERVAL_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._adapter = adapter
        self._key = key
        self._in_reply_to = in_reply_to
        self._interval = interval_s
        self._now = monotonic
        self._last = monotonic()
        self._pieces: list[str] = []
        self._broken = False
        self.message_id: str | None = None

    async def on_delta(self, piece: str) -> None:
        """One streamed piece; the preview is refreshed when it is due."""
        self._pieces.append(piece)
        now = self._now()
        if self._broken or now - self._last < self._interval:
            return
        self._last = now
        try:
            self.message_id = await self._adapter.preview(
                self._key,
                "".join(self._pieces),
                message_id=self.message_id,
                in_reply_to=self._in_reply_to,
            )
        except Exception as exc:  # the answer goes out through the outbox regardless
            log.warning("event=preview_failed conversation=%s problem=%r", self._key, exc)
            self._broken = True

    def replace_with(self, items: list[OutboundItem]) -> list[OutboundItem]:
        """The turn's items, the first reply set to replace the preview (if one is shown)."""
        if self.message_id is None:
            return items
        for index, item in enumerate(items):
            if item.kind == "reply":
                items[index] = item.model_copy(update={"edit_message_id": self.message_id})
                return items
        # No reply text in the end (only approvals): the preview keeps what was streamed.
        return items
