"""A loopback fake of Slack's Socket Mode server (aiohttp's websocket server).

``FakeSlack.apps.connections.open`` hands out ``issue_url()``: a one-time
``ws://127.0.0.1:PORT/link/?ticket=...`` URL, refused (403) when used again, as Slack's
are. On connect the server says ``hello``; ``send`` pushes an envelope (``events_api`` with
an ``event_callback``, ``interactive`` with a ``block_actions`` payload) to the newest
connection and the app must answer ``{"envelope_id": ...}``, recorded in ``acks``;
``disconnect`` asks the app to reconnect (``refresh_requested``). Starlette's websockets
would need a websocket library under uvicorn, which this project does not install; aiohttp
(slack-sdk's own client library) serves them instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.slack_api import APP_ID


class FakeSocketMode:
    """The websocket side of Socket Mode for one app."""

    def __init__(self) -> None:
        self.url = ""  # ws://127.0.0.1:PORT, once served
        self.acks: list[dict[str, Any]] = []
        self.connections = 0
        self.refused = 0
        self._tickets: set[str] = set()
        self._sockets: list[web.WebSocketResponse] = []
        self._envelope_ids = itertools.count(1)

    def issue_url(self) -> str:
        """A fresh one-time websocket URL (what apps.connections.open answers)."""
        ticket = uuid.uuid4().hex
        self._tickets.add(ticket)
        return f"{self.url}/link/?ticket={ticket}&app_id={APP_ID}"

    @property
    def connected(self) -> int:
        """Open connections."""
        return sum(1 for ws in self._sockets if not ws.closed)

    def acked(self, envelope_id: str) -> bool:
        """True once the app acknowledged ``envelope_id``."""
        return any(ack.get("envelope_id") == envelope_id for ack in self.acks)

    async def send(
        self, payload: dict[str, Any], *, kind: str = "events_api", retry_attempt: int = 0
    ) -> str:
        """Push one envelope to the newest open connection; returns its envelope id."""
        envelope_id = f"env-{next(self._envelope_ids):04d}-{uuid.uuid4().hex[:8]}"
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": retry_attempt,
            "retry_reason": "timeout" if retry_attempt else "",
        }
        await self._newest().send_str(json.dumps(envelope))
        return envelope_id

    async def disconnect(self) -> None:
        """Ask the app to reconnect, as Slack does every few hours."""
        await self._newest().send_str(
            json.dumps({"type": "disconnect", "reason": "refresh_requested"})
        )

    def _newest(self) -> web.WebSocketResponse:
        for ws in reversed(self._sockets):
            if not ws.closed:
                return ws
        raise AssertionError("no Socket Mode connection is open")

    async def _link(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:
            self.refused += 1
            return web.Response(status=403, text="invalid or used ticket")
        self._tickets.discard(ticket)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.connections += 1
        self._sockets.append(ws)
        hello = {
            "type": "hello",
            "num_connections": self.connected,
            "debug_info": {"host": "applink-fake", "approximate_connection_time": 18060},
            "connection_info": {"app_id": APP_ID},
        }
        await ws.send_str(json.dumps(hello))
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                data = json.loads(message.data)
                if "envelope_id" in data:
                    self.acks.append(data)
        return ws

    @contextlib.asynccontextmanager
    async def serve(self) -> AsyncIterator[str]:
        """Serve on a free loopback port; yields ``ws://127.0.0.1:PORT``."""
        app = web.Application()
        app.router.add_get("/link/", self._link)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        site = web.SockSite(runner, sock)
        await site.start()
        self.url = f"ws://127.0.0.1:{sock.getsockname()[1]}"
        try:
            yield self.url
        finally:
            for ws in self._sockets:
                if not ws.closed:
                    await ws.close()
            await asyncio.sleep(0)
            await runner.cleanup()
            sock.close()
