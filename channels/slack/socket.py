"""Socket Mode: Slack's events over a websocket the app opens, instead of HTTP POSTs.

``apps.connections.open`` (with the app-level ``xapp-`` token) gives a one-time ``wss://``
URL; slack-sdk's aiohttp client connects to it, keeps it alive with pings and reconnects
when Slack asks (a ``disconnect`` message) or the socket goes quiet. Every envelope goes to
the bolt app; bolt's socket handler acknowledges it (``{"envelope_id": ...}``) only after
the listener returned, so an event is in the inbox before Slack considers it delivered.
This module owns the client's life and reports the connection's state as it changes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import aiohttp
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from channels.slack.errors import slack_error

log = logging.getLogger("switchboard.channels.slack.socket")

MAX_BACKOFF_S = 60.0
STATE_POLL_S = 0.5
StateReport = Callable[[str, str | None], None]
"""``report(state, problem)``: problem None when all is well."""


class SocketModeRunner:
    """Connects ``app`` through Socket Mode and keeps it connected until cancelled."""

    def __init__(
        self,
        app: AsyncApp,
        *,
        app_token: str,
        web: AsyncWebClient,
        ping_interval_s: float,
        report: StateReport,
    ) -> None:
        self._app = app
        self._app_token = app_token
        self._web = web
        self._ping_interval_s = ping_interval_s
        self._report = report

    async def run(self) -> None:
        """Open the socket, then watch it (the client reconnects by itself)."""
        handler = AsyncSocketModeHandler(
            self._app,
            app_token=self._app_token,
            web_client=self._web,
            logger=log,
            ping_interval=self._ping_interval_s,
        )
        client = handler.client
        try:
            client.wss_uri = await self._socket_url(handler)
            await client.connect()  # type: ignore[no-untyped-call]  # slack-sdk leaves it untyped
            was_connected = False
            while True:
                connected = await client.is_connected()
                if connected:
                    self._report("connected (socket)", None)
                elif was_connected:
                    self._report("reconnecting", "the Socket Mode connection dropped")
                was_connected = connected
                await asyncio.sleep(STATE_POLL_S)
        finally:
            await client.close()  # type: ignore[no-untyped-call]

    async def _socket_url(self, handler: AsyncSocketModeHandler) -> str:
        """A fresh websocket URL from ``apps.connections.open``, retried with backoff."""
        backoff = 1.0
        while True:
            try:
                return await handler.client.issue_new_wss_url()
            except SlackApiError as exc:
                self._report("reconnecting", f"apps.connections.open failed: {slack_error(exc)}")
            except (aiohttp.ClientError, TimeoutError) as exc:
                self._report("reconnecting", f"cannot reach Slack: {type(exc).__name__}: {exc}")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
