"""The delivery engine: one worker per platform drains that platform's outbox.

Each due row goes to the channel's ``OutboundSender``. A sent row records the platform's
message id (an approval's buttons message is found by it later, to be edited with the
decision); a refused row is failed and logged; a rate limit or outage moves the row's next
attempt later (the platform's ``retry_after`` when it says one, else exponential backoff
with jitter) and holds the conversation's later rows back, so replies keep their order.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta

from core.errors import DeliveryRefused, DeliveryRetry
from core.orchestration_parts import Clock, utc_now
from core.ports import OutboundSender
from core.storage.outbox_repo import OutboxEntry, OutboxRepository

log = logging.getLogger("switchboard.delivery")

MAX_ATTEMPTS = 10
BASE_BACKOFF_S = 1.0
MAX_BACKOFF_S = 300.0


class DeliveryWorker:
    """Sends ``platform``'s outbox rows through ``sender``, in order, once each."""

    def __init__(
        self,
        *,
        platform: str,
        outbox: OutboxRepository,
        sender: OutboundSender,
        clock: Clock = utc_now,
        rng: Callable[[], float] = random.random,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self.platform = platform
        self._outbox = outbox
        self._sender = sender
        self._clock = clock
        self._rng = rng
        self._max_attempts = max_attempts
        self.wake = asyncio.Event()
        self.sent = 0
        self.failed = 0

    async def run(self, *, interval_s: float = 0.5) -> None:
        """Drain forever: at once when woken, else every ``interval_s``."""
        while True:
            if await self.drain() == 0:
                try:
                    await asyncio.wait_for(self.wake.wait(), timeout=interval_s)
                except TimeoutError:
                    pass
                self.wake.clear()

    async def drain(self) -> int:
        """Deliver every row due now; returns how many were attempted."""
        entries = await self._outbox.due(self.platform, now=self._clock())
        held: set[str] = set()  # conversations whose earlier row must be retried first
        for entry in entries:
            key = str(entry.item.conversation)
            if key in held:
                continue
            if not await self._deliver(entry):
                held.add(key)
        return len(entries)

    async def _deliver(self, entry: OutboxEntry) -> bool:
        """True when the row left the queue (sent or failed), False when it waits."""
        item = entry.item
        edit_id = item.edit_message_id
        if item.kind == "approval_update" and item.approval is not None:
            target = await self._outbox.approval_message(item.approval.id)
            edit_id = target.platform_message_id if target else None
        try:
            message_id = await self._sender.deliver(item, edit_message_id=edit_id)
        except DeliveryRefused as exc:
            await self._fail(entry, exc.message)
            return True
        except DeliveryRetry as exc:
            return await self._retry(entry, exc.message, exc.retry_after)
        except Exception as exc:  # an adapter bug or an unmapped error: retried, and loud
            log.exception(
                "event=delivery_crashed platform=%s outbox=%d conversation=%s",
                self.platform,
                entry.id,
                item.conversation,
            )
            return await self._retry(entry, f"{type(exc).__name__}: {exc}", None)
        await self._outbox.mark_sent(entry.id, platform_message_id=message_id, now=self._clock())
        self.sent += 1
        return True

    async def _retry(self, entry: OutboxEntry, error: str, retry_after: float | None) -> bool:
        attempts = entry.attempts + 1
        if attempts >= self._max_attempts:
            await self._fail(entry, f"gave up after {attempts} attempts: {error}")
            return True
        if retry_after is None:
            backoff = min(MAX_BACKOFF_S, BASE_BACKOFF_S * 2**entry.attempts)
            retry_after = backoff * (0.5 + self._rng() / 2)
        at: datetime = self._clock() + timedelta(seconds=retry_after)
        log.warning(
            "event=delivery_retry platform=%s outbox=%d conversation=%s attempt=%d in_s=%.1f "
            "problem=%r",
            self.platform,
            entry.id,
            entry.item.conversation,
            attempts,
            retry_after,
            error,
        )
        await self._outbox.retry_later(entry.id, error=error, at=at)
        return False

    async def _fail(self, entry: OutboxEntry, error: str) -> None:
        log.error(
            "event=delivery_failed platform=%s outbox=%d conversation=%s problem=%r",
            self.platform,
            entry.id,
            entry.item.conversation,
            error,
        )
        await self._outbox.mark_failed(entry.id, error=error, now=self._clock())
        self.failed += 1
