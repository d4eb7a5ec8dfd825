"""Answers for one user's eyes only: what a button press came to, told to the presser.

Sent with ``chat.postEphemeral`` after the press was acknowledged (Slack wants the
acknowledgement within 3 seconds; the decision itself is already recorded), by a worker the
channel runs. Best effort: a few tries, honouring a 429's ``Retry-After``, then dropped with
a warning; the approval message itself is edited through the outbox either way.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from channels.slack.errors import delivery_error
from core.errors import DeliveryRetry

log = logging.getLogger("switchboard.channels.slack")

ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class _Notice:
    channel: str
    user: str
    text: str
    thread_ts: str | None


class EphemeralNotices:
    """A queue of ephemeral messages and the worker that posts them."""

    def __init__(self, web: AsyncWebClient) -> None:
        self._web = web
        self._queue: asyncio.Queue[_Notice] = asyncio.Queue()

    def put(self, *, channel: str, user: str, text: str, thread_ts: str | None) -> None:
        """Tell ``user`` (alone) ``text`` in ``channel``, in the thread when there is one."""
        self._queue.put_nowait(_Notice(channel, user, text, thread_ts))

    async def run(self) -> None:
        """Post each notice as it comes, until cancelled."""
        while True:
            notice = await self._queue.get()
            for attempt in range(1, ATTEMPTS + 1):
                try:
                    await self._web.chat_postEphemeral(
                        channel=notice.channel,
                        user=notice.user,
                        text=notice.text,
                        thread_ts=notice.thread_ts,
                    )
                    break
                except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
                    problem = delivery_error(exc)
                    log.warning(
                        "event=ephemeral_failed channel=%s attempt=%d problem=%r",
                        notice.channel,
                        attempt,
                        problem.message,
                    )
                    if not isinstance(problem, DeliveryRetry) or attempt == ATTEMPTS:
                        break
                    await asyncio.sleep(problem.retry_after or float(attempt))
