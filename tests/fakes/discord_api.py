"""A loopback fake of Discord's REST API and Gateway for one bot, spoken to by the real discord.py.

``serve_discord(fake)`` serves the REST API under ``{url}/api/v10`` (set discord.py's
``Route.BASE`` to it) and the Gateway (``tests.fakes.discord_gateway``) on a second loopback
port, which ``GET /gateway/bot`` answers. Bot routes want ``Authorization: Bot <token>``
(else 401 ``{"message": "401: Unauthorized", "code": 0}``); interaction callbacks and
interaction webhooks are authorized by the token in their path, as on Discord. Every answer
carries ``X-RateLimit-*`` headers and ``Via`` (discord.py takes a 429 without ``Via`` for a
Cloudflare ban). The fake refuses what Discord refuses where an adapter bug would show:
content over 2,000 characters or empty, components that are not action rows of buttons with a
``custom_id`` of at most 100 characters, replies to unknown messages (unless
``fail_if_not_exists`` is false), edits of messages that are not the bot's, an interaction
answered twice or more than 3 s after it was created, deferred updates of slash commands. A
message sent again with the same ``nonce`` and ``enforce_nonce`` is the same message.
Wire rules for messages and interactions live in ``discord_wire``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes import discord_wire as wire
from tests.fakes.discord_gateway import FakeGateway, GatewaySession, serve_gateway
from tests.fakes.discord_wire import ApiError, FakeInteraction, SentMessage
from tests.fakes.server import serve_app

DEFAULT_TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.fake.discord-bot-token"
BOT_ID, APP_ID, GUILD_ID, GENERAL = (
    "1100000000000000001",
    "1100000000000000001",
    "1200000000000000002",
    "1300000000000000003",
)
Payload = dict[str, Any]
Handler = Callable[[Request, Payload], Awaitable[Any]]


@dataclass
class _Failure:
    method: str
    route: str
    status: int
    retry_after: float
    global_: bool
    after_create: bool


class FakeDiscord:
    """The state of one bot on Discord, with the controls tests use to play the users."""

    def __init__(self, token: str = DEFAULT_TOKEN) -> None:
        self.token = token
        self.bot_user = wire.user(BOT_ID, "switchboard", bot=True)
        self.owner = wire.user("1000000000000000099", "owner")
        self.calls: list[tuple[str, str, Payload | None]] = []
        self.commands: list[Payload] = []
        self.typing: list[str] = []
        self.channels: dict[str, Payload] = {
            GENERAL: {"id": GENERAL, "type": 0, "guild_id": GUILD_ID, "name": "general"}
        }
        self.interactions: dict[str, FakeInteraction] = {}
        self.gateway_bot_url: str | None = None  # what GET /gateway/bot answers; None: the fake's
        self.gateway = FakeGateway(
            token=token, ready=self._ready, guilds=self._guilds, bot_id=BOT_ID
        )
        self._ids = wire.Snowflakes()
        self._sent: dict[str, SentMessage] = {}
        self._inbound: dict[str, Payload] = {}
        self._nonces: dict[tuple[str, str], SentMessage] = {}
        self._failures: list[_Failure] = []

    # --- test controls -------------------------------------------------------------------

    @staticmethod
    def mention() -> str:
        """How a user mentions the bot in a message."""
        return f"<@{BOT_ID}>"

    def user(self, user_id: str, name: str, *, bot: bool = False) -> Payload:
        """A Discord user object."""
        return wire.user(user_id, name, bot=bot)

    def dm_channel(self, user: Payload) -> str:
        """The id of the DM channel between the bot and ``user``."""
        channel_id = str(int(user["id"]) + 7)
        self.channels[channel_id] = {"id": channel_id, "type": 1, "recipients": [user]}
        return channel_id

    def user_message(
        self, channel_id: str, author: Payload, content: str, *, mentions: tuple[Payload, ...] = ()
    ) -> Payload:
        """``author`` writes ``content`` in ``channel_id``: MESSAGE_CREATE over the Gateway."""
        channel = self.channels[channel_id]
        message = wire.message(
            id=self._ids.next(),
            channel=channel,
            author=author,
            content=content,
            mentions=list(mentions),
        )
        message["mention_everyone"] = "@everyone" in content or "@here" in content
        self._inbound[message["id"]] = message
        self.gateway.dispatch("MESSAGE_CREATE", message)
        return message

    def dispatch_again(self, message: Payload) -> None:
        """The same MESSAGE_CREATE once more (as after a resume that replays it)."""
        self.gateway.dispatch("MESSAGE_CREATE", message)

    def press(self, sent: SentMessage, custom_id: str, user: Payload) -> FakeInteraction:
        """``user`` presses the button ``custom_id`` under the bot's message ``sent``."""
        data = {"custom_id": custom_id, "component_type": 2}
        return self._interact(3, sent.channel_id, user, data, message=sent.payload(self.bot_user))

    def slash_ask(self, channel_id: str, user: Payload, question: str) -> FakeInteraction:
        """``user`` runs ``/ask question:<question>`` in ``channel_id``."""
        command = next((c for c in self.commands if c["name"] == "ask"), None)
        if command is None:
            raise AssertionError("the app has not registered a /ask command")
        option = {"name": "question", "type": 3, "value": question}
        data = {"id": command["id"], "name": "ask", "type": 1, "options": [option]}
        return self._interact(2, channel_id, user, data, message=None)

    def _interact(
        self, kind: int, channel_id: str, user: Payload, data: Payload, *, message: Payload | None
    ) -> FakeInteraction:
        interaction = FakeInteraction(
            id=self._ids.next(),
            token=f"itoken-{self._ids.next()}",
            type=kind,
            channel_id=channel_id,
        )
        self.interactions[interaction.id] = interaction
        payload = wire.interaction(
            interaction, app_id=APP_ID, channel=self.channels[channel_id], user=user, data=data
        )
        if message is not None:
            payload["message"] = message
        self.gateway.dispatch("INTERACTION_CREATE", payload)
        return interaction

    def messages(self, channel_id: str) -> list[SentMessage]:
        """What the bot shows in ``channel_id`` (not ephemeral), oldest first."""
        return [m for m in self._sent.values() if m.channel_id == channel_id and not m.ephemeral]

    def fail_next(
        self,
        method: str,
        route: str,
        *,
        status: int = 429,
        retry_after: float = 0.5,
        global_: bool = False,
        after_create: bool = False,
    ) -> None:
        """Answer the next ``method route`` (a route template) with ``status``.

        ``after_create``: do the work first, then fail (the answer is lost on its way back).
        """
        self._failures.append(_Failure(method, route, status, retry_after, global_, after_create))

    # --- gateway payloads ----------------------------------------------------------------

    def _ready(self, session: GatewaySession) -> Payload:
        return wire.ready(
            user=self.bot_user,
            session_id=session.id,
            resume_url=self.gateway.url,
            guild_id=GUILD_ID,
            app_id=APP_ID,
        )

    def _guilds(self) -> list[Payload]:
        channels = [c for c in self.channels.values() if c.get("guild_id") == GUILD_ID]
        return [wire.guild(GUILD_ID, channels=channels, bot=self.bot_user, owner=self.owner)]

    # --- REST ----------------------------------------------------------------------------

    def take_failure(self, method: str, route: str) -> _Failure | None:
        for failure in self._failures:
            if failure.method == method and failure.route == route:
                self._failures.remove(failure)
                return failure
        return None

    def known_message(self, channel_id: str, message_id: str) -> bool:
        found = self._sent.get(message_id) or self._inbound.get(message_id)
        if isinstance(found, SentMessage):
            return found.channel_id == channel_id
        return found is not None and found["channel_id"] == channel_id

    def channel(self, channel_id: str) -> Payload:
        channel = self.channels.get(channel_id)
        if channel is None:
            raise ApiError(404, 10003, "Unknown Channel")
        return channel

    def create(
        self, channel_id: str, body: Payload, *, check: bool = True, **extra: Any
    ) -> SentMessage:
        """A message by the bot (or an interaction's response), after Discord's checks."""
        if check:
            wire.check_message(body, partial=False)
        sent = SentMessage(
            id=self._ids.next(),
            channel_id=channel_id,
            content=body.get("content") or "",
            components=list(body.get("components") or []),
            allowed_mentions=body.get("allowed_mentions"),
            nonce=str(body["nonce"]) if body.get("nonce") is not None else None,
            flags=int(body.get("flags") or 0),
            **extra,
        )
        self._sent[sent.id] = sent
        return sent

    def sent(self, message_id: str) -> SentMessage:
        sent = self._sent.get(message_id)
        if sent is None:
            raise ApiError(404, 10008, "Unknown Message")
        return sent

    def remember_nonce(self, channel_id: str, sent: SentMessage) -> None:
        if sent.nonce is not None:
            self._nonces[(channel_id, sent.nonce)] = sent

    def by_nonce(self, channel_id: str, body: Payload) -> SentMessage | None:
        if body.get("nonce") is None or not body.get("enforce_nonce"):
            return None
        return self._nonces.get((channel_id, str(body["nonce"])))

    def interaction(self, interaction_id: str, token: str) -> FakeInteraction:
        found = self.interactions.get(interaction_id)
        if found is None or found.token != token:
            raise ApiError(404, 10062, "Unknown interaction")
        return found

    def interaction_by_token(self, app_id: str, token: str) -> FakeInteraction:
        found = next((i for i in self.interactions.values() if i.token == token), None)
        if found is None or app_id != APP_ID or not found.responses:
            raise ApiError(404, 10015, "Unknown Webhook")
        return found


def make_app(fake: FakeDiscord) -> Starlette:
    """The REST API of ``fake`` as an ASGI app."""
    routes: list[Route] = []

    def endpoint(method: str, template: str, *, auth: bool = True) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            async def serve(request: Request) -> Response:
                body = await request.json() if await request.body() else None
                fake.calls.append((method, request.url.path, body))
                headers = wire.ratelimit_headers(template)
                if auth and request.headers.get("Authorization") != f"Bot {fake.token}":
                    return JSONResponse(
                        {"message": "401: Unauthorized", "code": 0}, 401, headers=headers
                    )
                failure = fake.take_failure(method, template)
                if failure is not None and not failure.after_create:
                    return wire.failure_response(
                        failure.status, failure.retry_after, failure.global_
                    )
                try:
                    result = await handler(request, body or {})
                except ApiError as exc:
                    return JSONResponse(exc.body(), exc.status, headers=headers)
                if failure is not None:
                    return wire.failure_response(
                        failure.status, failure.retry_after, failure.global_
                    )
                if result is None:
                    return Response(status_code=204, headers=headers)
                return JSONResponse(result, headers=headers)

            routes.append(Route("/api/v10" + template, serve, methods=[method]))
            return handler

        return register

    @endpoint("GET", "/users/@me")
    async def get_me(request: Request, body: Payload) -> Payload:
        return fake.bot_user

    @endpoint("GET", "/oauth2/applications/@me")
    async def application(request: Request, body: Payload) -> Payload:
        return wire.application(APP_ID, bot=fake.bot_user, owner=fake.owner)

    @endpoint("GET", "/gateway/bot")
    async def gateway_bot(request: Request, body: Payload) -> Payload:
        limit = {"total": 1000, "remaining": 999, "reset_after": 14400000, "max_concurrency": 1}
        url = fake.gateway_bot_url or fake.gateway.url
        return {"url": url, "shards": 1, "session_start_limit": limit}

    @endpoint("PUT", "/applications/{app_id}/commands")
    async def put_commands(request: Request, body: Any) -> list[Payload]:
        if request.path_params["app_id"] != APP_ID:
            raise ApiError(403, 50001, "Missing Access")
        fake.commands = [wire.command(c, app_id=APP_ID, ids=fake._ids) for c in body]
        return fake.commands

    @endpoint("POST", "/channels/{channel_id}/messages")
    async def create_message(request: Request, body: Payload) -> Payload:
        channel_id = request.path_params["channel_id"]
        fake.channel(channel_id)
        again = fake.by_nonce(channel_id, body)
        if again is not None:
            return again.payload(fake.bot_user)
        reference = body.get("message_reference")
        if reference is not None:
            if not fake.known_message(channel_id, str(reference.get("message_id"))):
                if reference.get("fail_if_not_exists", True):
                    raise ApiError.invalid("message_reference", "Unknown message")
                reference = None
        sent = fake.create(channel_id, body, message_reference=reference)
        fake.remember_nonce(channel_id, sent)
        return sent.payload(fake.bot_user)

    @endpoint("PATCH", "/channels/{channel_id}/messages/{message_id}")
    async def edit_message(request: Request, body: Payload) -> Payload:
        channel_id, message_id = (
            request.path_params["channel_id"],
            request.path_params["message_id"],
        )
        fake.channel(channel_id)
        if message_id in fake._inbound:
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        sent = fake.sent(message_id)
        wire.check_message(body, partial=True)
        sent.edit(body)
        return sent.payload(fake.bot_user)

    @endpoint("POST", "/channels/{channel_id}/typing")
    async def typing(request: Request, body: Payload) -> None:
        fake.typing.append(fake.channel(request.path_params["channel_id"])["id"])

    @endpoint("POST", "/interactions/{interaction_id}/{token}/callback", auth=False)
    async def callback(request: Request, body: Payload) -> Payload | None:
        params = request.path_params
        interaction = fake.interaction(params["interaction_id"], params["token"])
        elapsed = time.monotonic() - interaction.created
        if elapsed > wire.INTERACTION_DEADLINE_S:
            raise ApiError(404, 10062, "Unknown interaction")
        if interaction.responses:
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        kind, data = body.get("type"), body.get("data") or {}
        if kind not in (4, 5, 6, 7) or (kind in (6, 7) and interaction.type != 3):
            raise ApiError.invalid("type", f"Interaction callback type {kind} is not valid here")
        interaction.responses.append((elapsed, body))
        if kind == 4:
            interaction.original = fake.create(
                interaction.channel_id, data, interaction_id=interaction.id
            )
        elif kind == 5:  # "is thinking...": an empty message, replaced by the edit
            flags = int(data.get("flags") or 0) | wire.LOADING
            interaction.original = fake.create(
                interaction.channel_id,
                {"content": "", "flags": flags},
                check=False,
                interaction_id=interaction.id,
            )
        if "with_response" not in request.query_params:
            return None
        return wire.callback_response(interaction, kind, bot=fake.bot_user)

    @endpoint("PATCH", "/webhooks/{app_id}/{token}/messages/@original", auth=False)
    async def edit_original(request: Request, body: Payload) -> Payload:
        params = request.path_params
        interaction = fake.interaction_by_token(params["app_id"], params["token"])
        if interaction.original is None:
            raise ApiError(404, 10008, "Unknown Message")
        wire.check_message(body, partial=True)
        interaction.original.edit(body)
        interaction.original.flags &= ~wire.LOADING
        return interaction.original.payload(fake.bot_user)

    @endpoint("POST", "/webhooks/{app_id}/{token}", auth=False)
    async def followup(request: Request, body: Payload) -> Payload:
        params = request.path_params
        interaction = fake.interaction_by_token(params["app_id"], params["token"])
        sent = fake.create(interaction.channel_id, body, interaction_id=interaction.id)
        interaction.followups.append(sent)
        return sent.payload(fake.bot_user)

    return Starlette(routes=routes)


@contextlib.asynccontextmanager
async def serve_discord(fake: FakeDiscord) -> AsyncIterator[str]:
    """Serve ``fake``'s Gateway and REST API on loopback; yields the API base (``.../api/v10``)."""
    async with serve_gateway(fake.gateway), serve_app(make_app(fake)) as url:
        yield f"{url}/api/v10"
