"""A loopback fake of Discord's Gateway (the bot's websocket), spoken to by the real discord.py.

The wire is Discord's: ``?v=10&encoding=json`` (anything else is closed with 4012 / 4002),
JSON payloads ``{"op", "d", "s", "t"}``, and with ``compress=zlib-stream`` one zlib stream per
connection, each payload ending in a ``Z_SYNC_FLUSH`` (binary frames), else text frames. The
fake sends Hello (op 10), answers Heartbeat (op 1) with ACK (op 11), takes Identify (op 2;
a wrong token closes 4004, intents that are not an integer 4013) with READY then one
GUILD_CREATE per guild, and Resume (op 6) by replaying what the session missed and RESUMED;
a session it does not know gets Invalid Session (op 9, ``d: false``). Without the
MESSAGE_CONTENT intent, guild messages that do not mention the bot arrive with empty content,
as on Discord. Sequence numbers count per session, as on Discord.

It is served by aiohttp's websocket server on its own loopback port (Discord serves the
Gateway from its own host too): the uvicorn of this venv has no websocket implementation
(neither ``websockets`` nor ``wsproto`` is installed), aiohttp comes with discord.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

Payload = dict[str, Any]
GUILDS, GUILD_MESSAGES, DIRECT_MESSAGES, MESSAGE_CONTENT = 1 << 0, 1 << 9, 1 << 12, 1 << 15


@dataclass
class GatewaySession:
    """One identified session: what was dispatched in it, for resuming."""

    id: str
    intents: int
    events: list[Payload] = field(default_factory=list)
    invalid: bool = False

    @property
    def seq(self) -> int:
        return len(self.events)


class _Connection:
    """One open websocket; everything it sends goes through its queue, in order."""

    def __init__(self, ws: web.WebSocketResponse, *, compress: bool) -> None:
        self.ws = ws
        self.session: GatewaySession | None = None
        self.queue: asyncio.Queue[Payload | int] = asyncio.Queue()  # an int: close with it
        self._zlib = zlib.compressobj() if compress else None

    def send(self, payload: Payload) -> None:
        self.queue.put_nowait(payload)

    def close(self, code: int) -> None:
        self.queue.put_nowait(code)

    async def write_forever(self) -> None:
        while True:
            item = await self.queue.get()
            if isinstance(item, int):
                await self.ws.close(code=item)
                return
            text = json.dumps(item)
            if self._zlib is None:
                await self.ws.send_str(text)
            else:
                data = self._zlib.compress(text.encode()) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
                await self.ws.send_bytes(data)


class FakeGateway:
    """The Gateway's state, with the controls tests use (dispatch, drop, reconnect)."""

    def __init__(
        self,
        *,
        token: str,
        ready: Callable[[GatewaySession], Payload],
        guilds: Callable[[], list[Payload]],
        bot_id: str,
        heartbeat_interval_ms: int = 41_250,
    ) -> None:
        self.token = token
        self.url = ""  # ws://127.0.0.1:PORT/, once served
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.identifies: list[Payload] = []
        self.resumes: list[Payload] = []
        self.heartbeats = 0
        self.connections = 0
        self.query: list[dict[str, str]] = []
        self.close_codes: list[int] = []
        self.sessions: dict[str, GatewaySession] = {}
        self._ready = ready
        self._guilds = guilds
        self._bot_id = bot_id
        self._live: _Connection | None = None
        self._current: GatewaySession | None = None

    # --- test controls -------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """A connection is open and identified (or resumed)."""
        return self._live is not None and self._live.session is not None

    def dispatch(self, event: str, data: Payload) -> Payload:
        """Dispatch ``event`` in the current session; replayed on resume if nobody listens now."""
        session = self._current
        if session is None:
            raise AssertionError("nobody has identified with the fake gateway yet")
        payload = {"op": 0, "d": data, "s": session.seq + 1, "t": event}
        if event == "MESSAGE_CREATE" and not session.intents & MESSAGE_CONTENT:
            payload["d"] = _without_content(data, self._bot_id)
        session.events.append(payload)
        live = self._live
        if live is not None and live.session is session:
            live.send(payload)
        return payload

    def drop(self, code: int = 4000) -> None:
        """Close the live connection with ``code`` (4000: unknown error, the client resumes)."""
        if self._live is not None:
            self._live.close(code)

    def request_reconnect(self) -> None:
        """Send Reconnect (op 7): the client closes and resumes."""
        if self._live is not None:
            self._live.send({"op": 7, "d": None, "s": None, "t": None})

    def invalidate_session(self) -> None:
        """Send Invalid Session (op 9, not resumable): the client identifies anew."""
        if self._live is not None and self._live.session is not None:
            self._live.session.invalid = True
            self._live.send({"op": 9, "d": False, "s": None, "t": None})

    # --- the websocket -------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """One client connection, until either side closes it."""
        ws = web.WebSocketResponse(autoping=True, max_msg_size=0)
        await ws.prepare(request)
        self.connections += 1
        self.query.append(dict(request.query))
        compress = request.query.get("compress") == "zlib-stream"
        connection = _Connection(ws, compress=compress)
        writer = asyncio.create_task(connection.write_forever())
        try:
            if request.query.get("v") != "10":
                connection.close(4012)  # invalid API version
            elif request.query.get("encoding", "json") != "json":
                connection.close(4002)  # the fake decodes JSON only
            else:
                connection.send({"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
                self._live = connection
                await self._receive(connection)
        finally:
            if self._live is connection:
                self._live = None
            connection.close(1000)  # lets the writer end (a no-op on a closed socket)
            await asyncio.wait({writer}, timeout=1.0)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            if ws.close_code is not None:
                self.close_codes.append(ws.close_code)
        return ws

    async def _receive(self, connection: _Connection) -> None:
        async for message in connection.ws:
            if message.type is not WSMsgType.TEXT:
                connection.close(4002)  # decode error: the fake takes JSON text
                return
            payload = json.loads(message.data)
            op = payload.get("op")
            if op == 1:
                self.heartbeats += 1
                connection.send({"op": 11})
            elif op == 2:
                self._identify(connection, payload.get("d") or {})
            elif op == 6:
                self._resume(connection, payload.get("d") or {})
            elif connection.session is None:
                connection.close(4003)  # not authenticated
            elif op not in (3, 4, 8):  # presence, voice state, request members: ignored
                connection.close(4001)  # unknown opcode

    def _identify(self, connection: _Connection, data: Payload) -> None:
        self.identifies.append(data)
        if connection.session is not None:
            connection.close(4005)  # already authenticated
            return
        if data.get("token") != self.token:
            connection.close(4004)  # authentication failed
            return
        intents = data.get("intents")
        if not isinstance(intents, int) or intents < 0:
            connection.close(4013)  # invalid intents
            return
        session = GatewaySession(id=uuid.uuid4().hex, intents=intents)
        self.sessions[session.id] = session
        connection.session = self._current = session
        self.dispatch("READY", self._ready(session))
        if intents & GUILDS:
            for guild in self._guilds():
                self.dispatch("GUILD_CREATE", guild)

    def _resume(self, connection: _Connection, data: Payload) -> None:
        self.resumes.append(data)
        session = self.sessions.get(str(data.get("session_id")))
        if data.get("token") != self.token:
            connection.close(4004)
            return
        if session is None or session.invalid or session is not self._current:
            connection.send({"op": 9, "d": False, "s": None, "t": None})
            return
        connection.session = session
        seq = data.get("seq") or 0
        for payload in session.events[seq:]:
            connection.send(payload)
        self.dispatch("RESUMED", {})


def _without_content(message: Payload, bot_id: str) -> Payload:
    mentioned = any(str(user.get("id")) == bot_id for user in message.get("mentions", ()))
    if "guild_id" not in message or mentioned:
        return message  # DMs and mentions of the app keep their content
    return {**message, "content": "", "embeds": [], "attachments": [], "components": []}


@contextlib.asynccontextmanager
async def serve_gateway(gateway: FakeGateway) -> AsyncIterator[str]:
    """Serve ``gateway`` on a free loopback port; yields (and sets) its ``ws://`` URL."""
    app = web.Application()
    app.router.add_get("/", gateway.handle)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    gateway.url = f"ws://{host}:{port}/"
    try:
        yield gateway.url
    finally:
        gateway.drop(1001)
        await runner.cleanup()
