"""A loopback fake of Slack for one app in one workspace: the Web API, and the user's side.

The Web API is served at ``/api/<method>`` (point slack-sdk's ``AsyncWebClient(base_url=
url + "/api/")`` at it): form, JSON or query parameters, the token from ``Authorization:
Bearer`` (or a ``token`` parameter); a wrong token answers ``{"ok": false, "error":
"invalid_auth"}``, as Slack does, with HTTP 200. It serves ``auth.test``,
``chat.postMessage``, ``chat.update``, ``chat.postEphemeral`` and ``apps.connections.open``
(app-level ``xapp-`` token only), refuses what Slack refuses where an adapter bug would
show (unknown channel, no text, text over 40,000 characters, malformed Block Kit, editing a
message that is not the bot's) and records what the bot posted. ``fail_next`` makes a call
answer 429 with ``Retry-After`` (or another status) once.

The user's side builds what Slack would send the app: Events API ``event_callback``
envelopes (``app_mention``, ``message.im``), ``block_actions`` interaction payloads (form
encoded ``payload=``), and the v0 signature headers (HMAC-SHA256 of ``v0:{ts}:{body}``
with the signing secret) to POST them to the app's Request URL, correctly or forged.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

BOT_TOKEN = "xoxb-0000-fake-bot-token"
APP_TOKEN = "xapp-1-A0APP-fake-app-token"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_USER, BOT_ID, TEAM, APP_ID = "U0BOT", "B0BOT", "T0TEAM", "A0APP"
TEXT_LIMIT = 40_000
SECTION_LIMIT = 3000
_BLOCK_TYPES = {"section", "actions", "context", "divider", "header", "image", "rich_text"}
Params = dict[str, Any]
AUTH_TEST: Params = {"url": "https://fake.slack.com/", "team": "Fake Team", "user": "switchboard"}
AUTH_TEST |= {"team_id": TEAM, "user_id": BOT_USER, "bot_id": BOT_ID}


class SocketServer(Protocol):
    """What ``apps.connections.open`` needs from the Socket Mode fake."""

    def issue_url(self) -> str: ...


class ApiError(Exception):
    """A refusal in Slack's shape: ``{"ok": false, "error": ...}`` with an HTTP status."""

    def __init__(self, error: str, *, status: int = 200, retry_after: int | None = None):
        super().__init__(error)
        self.error, self.status, self.retry_after = error, status, retry_after

    def response(self) -> JSONResponse:
        headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else None
        return JSONResponse({"ok": False, "error": self.error}, self.status, headers=headers)


@dataclass
class SentMessage:
    """A message the bot posted, as it stands now (``edits`` keeps each chat.update)."""

    channel: str
    ts: str
    thread_ts: str | None
    text: str
    blocks: list[dict[str, Any]]
    edits: list[Params] = field(default_factory=list)

    @property
    def buttons(self) -> list[dict[str, Any]]:
        """The buttons of its actions blocks."""
        return [
            element
            for block in self.blocks
            if block.get("type") == "actions"
            for element in block.get("elements", [])
        ]

    @property
    def shown(self) -> str:
        """What a reader sees: the blocks' texts when there are blocks, else the text."""
        texts = [b["text"]["text"] for b in self.blocks if isinstance(b.get("text"), dict)]
        return "\n".join(texts) if self.blocks else self.text


@dataclass(frozen=True)
class Ephemeral:
    """A message only ``user`` sees."""

    channel: str
    user: str
    text: str
    thread_ts: str | None


def sign(body: bytes, *, timestamp: int, secret: str = SIGNING_SECRET) -> dict[str, str]:
    """Slack's v0 request signature headers for ``body``."""
    base = f"v0:{timestamp}:".encode() + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": f"v0={digest}"}


def _check_blocks(blocks: Any) -> None:
    if not isinstance(blocks, list) or len(blocks) > 50:
        raise ApiError("invalid_blocks")
    action_ids: set[str] = set()
    for block in blocks:
        if not isinstance(block, dict) or block.get("type") not in _BLOCK_TYPES:
            raise ApiError("invalid_blocks")
        text = block.get("text")
        if block["type"] == "section" and (
            not isinstance(text, dict)
            or text.get("type") not in ("mrkdwn", "plain_text")
            or not 1 <= len(str(text.get("text", ""))) <= SECTION_LIMIT
        ):
            raise ApiError("invalid_blocks")
        for element in block.get("elements", []) if block["type"] == "actions" else []:
            label = element.get("text") or {}
            action_id = str(element.get("action_id", ""))
            if (
                element.get("type") != "button"
                or label.get("type") != "plain_text"
                or not 1 <= len(str(label.get("text", ""))) <= 75
                or len(str(element.get("value", ""))) > 2000
                or not 1 <= len(action_id) <= 255
                or action_id in action_ids
                or element.get("style", "primary") not in ("primary", "danger")
            ):
                raise ApiError("invalid_blocks")
            action_ids.add(action_id)


class FakeSlack:
    """One workspace with the app installed, and the controls tests use to play the users."""

    def __init__(
        self,
        *,
        bot_token: str = BOT_TOKEN,
        app_token: str = APP_TOKEN,
        signing_secret: str = SIGNING_SECRET,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bot_token, self.app_token, self.signing_secret = bot_token, app_token, signing_secret
        self.base_url = ""  # set by the test once served, for response URLs
        self.socket: SocketServer | None = None
        self.calls: list[tuple[str, Params]] = []
        self.ephemerals: list[Ephemeral] = []
        self.responses: list[Params] = []  # posts to a response_url
        self._clock = clock
        self._seq = itertools.count(1)
        self._channels: set[str] = set()
        self._sent: dict[tuple[str, str], SentMessage] = {}
        self._failures: dict[str, deque[ApiError]] = {}

    # --- test controls: the Web API ------------------------------------------------------

    def fail_next(
        self, method: str, *, status: int = 429, retry_after: int | None = 1, error: str = ""
    ) -> None:
        """Make the next call of ``method`` fail once; a 429 carries ``Retry-After``."""
        failure = ApiError(
            error or ("ratelimited" if status == 429 else "internal_error"),
            status=status,
            retry_after=retry_after if status == 429 else None,
        )
        self._failures.setdefault(method, deque()).append(failure)

    def messages(self, channel: str) -> list[SentMessage]:
        """What the bot posted in ``channel``, oldest first."""
        return sorted((m for m in self._sent.values() if m.channel == channel), key=lambda m: m.ts)

    def posts(self, method: str = "chat.postMessage") -> list[Params]:
        """The parameters of every call of ``method``, refused ones included."""
        return [params for name, params in self.calls if name == method]

    # --- test controls: the users --------------------------------------------------------

    def _ts(self) -> str:
        return f"{int(self._clock())}.{next(self._seq):06d}"

    def message_event(
        self,
        channel: str,
        user: str,
        text: str,
        *,
        thread_ts: str | None = None,
        kind: str = "message",
        channel_type: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """A message a user (or a bot, with ``bot_id=``) wrote: the ``event`` of a callback."""
        self._channels.add(channel)
        event: dict[str, Any] = {"type": kind, "user": user, "text": text, "ts": self._ts()}
        event |= {"channel": channel, "team": TEAM, "event_ts": event["ts"]}
        if thread_ts is not None:
            event["thread_ts"] = thread_ts
        if kind == "message":
            event["channel_type"] = channel_type or ("im" if channel.startswith("D") else "channel")
        return event | extra

    def mention(self, channel: str, user: str, text: str, **kwargs: Any) -> dict[str, Any]:
        """An ``app_mention`` event: ``<@BOT> text`` in a channel."""
        return self.message_event(
            channel, user, f"<@{BOT_USER}> {text}", kind="app_mention", **kwargs
        )

    def envelope(self, event: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
        """The Events API ``event_callback`` that carries ``event``."""
        return {
            "token": "legacy-verification-token",
            "team_id": TEAM,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or f"Ev{next(self._seq):08d}",
            "event_time": int(self._clock()),
            "authorizations": [{"team_id": TEAM, "user_id": BOT_USER, "is_bot": True}],
            "is_ext_shared_channel": False,
        }

    def block_actions(self, message: SentMessage, user: str, *, button: int) -> dict[str, Any]:
        """The ``block_actions`` payload of ``user`` pressing the bot's button ``button``."""
        pressed = message.buttons[button]
        block_id = next(b.get("block_id", "b") for b in message.blocks if b["type"] == "actions")
        shown: Params = {"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "ts": message.ts}
        shown |= {"text": message.text, "blocks": message.blocks}
        shown |= {"thread_ts": message.thread_ts} if message.thread_ts else {}
        action = {key: pressed.get(key) for key in ("type", "action_id", "text", "value", "style")}
        container = {"type": "message", "message_ts": message.ts, "channel_id": message.channel}
        return {
            "type": "block_actions",
            "user": {"id": user, "username": user.lower(), "team_id": TEAM},
            "api_app_id": APP_ID,
            "token": "legacy-verification-token",
            "container": container | {"is_ephemeral": False},
            "trigger_id": f"{next(self._seq)}.fake.trigger",
            "team": {"id": TEAM, "domain": "fake"},
            "channel": {"id": message.channel, "name": "fake-channel"},
            "message": shown,
            "response_url": f"{self.base_url}/actions/{TEAM}/{next(self._seq)}/fake",
            "actions": [action | {"block_id": block_id, "action_ts": self._ts()}],
        }

    def signed(
        self,
        payload: dict[str, Any],
        *,
        form: bool = False,
        age_s: float = 0,
        secret: str | None = None,
        retry_num: int | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """The body and headers Slack POSTs to the Request URL, signed ``age_s`` ago."""
        if form:  # interactivity: a form with the JSON in ``payload``
            body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
            content_type = "application/x-www-form-urlencoded"
        else:
            body, content_type = json.dumps(payload).encode(), "application/json"
        timestamp = int(self._clock() - age_s)
        headers = sign(body, timestamp=timestamp, secret=secret or self.signing_secret)
        headers |= {"Content-Type": content_type, "User-Agent": "Slackbot 1.0"}
        if retry_num is not None:
            headers |= {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"}
        return body, headers

    # --- the Web API ---------------------------------------------------------------------

    def call(self, method: str, *, token: str, params: Params) -> Params:
        """One Web API call; raises ApiError as Slack would refuse it."""
        failures = self._failures.get(method)
        if failures:
            raise failures.popleft()
        if not token:
            raise ApiError("not_authed")
        if method == "apps.connections.open":
            if token != self.app_token:
                bot_token = token.startswith("xoxb-")
                raise ApiError("not_allowed_token_type" if bot_token else "invalid_auth")
            if self.socket is None:
                raise ApiError("internal_error")
            return {"url": self.socket.issue_url()}
        if token != self.bot_token:
            raise ApiError("invalid_auth")
        if method == "auth.test":
            return AUTH_TEST
        if method == "chat.postMessage":
            return self._post(params)
        if method == "chat.update":
            return self._update(params)
        if method == "chat.postEphemeral":
            channel, user, text = self._channel(params), params.get("user"), params.get("text")
            if not user or not text:
                raise ApiError("user_not_in_channel" if not user else "no_text")
            thread_ts = params.get("thread_ts") or None
            self.ephemerals.append(Ephemeral(channel, str(user), str(text), thread_ts))
            return {"message_ts": self._ts()}
        raise ApiError("unknown_method")

    def _channel(self, params: Params) -> str:
        channel = str(params.get("channel") or "")
        if channel not in self._channels:  # the bot only knows where users wrote to it
            raise ApiError("channel_not_found")
        return channel

    def _content(self, params: Params) -> tuple[str, list[dict[str, Any]] | None]:
        text, blocks = str(params.get("text") or ""), params.get("blocks")
        if isinstance(blocks, str):
            try:
                blocks = json.loads(blocks)
            except ValueError:
                raise ApiError("invalid_blocks_format") from None
        if blocks is not None:
            _check_blocks(blocks)
        if not text.strip() and not blocks:
            raise ApiError("no_text")
        if len(text) > TEXT_LIMIT:
            raise ApiError("msg_too_long")
        return text, blocks

    def _post(self, params: Params) -> Params:
        channel = self._channel(params)
        text, blocks = self._content(params)
        thread_ts = str(params["thread_ts"]) if params.get("thread_ts") else None
        sent = SentMessage(channel, self._ts(), thread_ts, text, blocks or [])
        self._sent[(channel, sent.ts)] = sent
        message = {"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "text": text}
        message |= {"ts": sent.ts} | ({"thread_ts": thread_ts} if thread_ts else {})
        return {"channel": channel, "ts": sent.ts, "message": message}

    def _update(self, params: Params) -> Params:
        channel = self._channel(params)
        sent = self._sent.get((channel, str(params.get("ts", ""))))
        if sent is None:
            raise ApiError("message_not_found")
        text, blocks = self._content(params)
        sent.edits.append(dict(params))
        sent.text = text
        if blocks is not None:  # as on Slack: without blocks, the old ones stay
            sent.blocks = blocks
        return {"channel": channel, "ts": sent.ts, "text": text}


async def _params(request: Request) -> Params:
    params: Params = dict(request.query_params)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        body = await request.body()
        params |= json.loads(body) if body else {}
    elif content_type.startswith("application/x-www-form-urlencoded"):
        form = urllib.parse.parse_qs((await request.body()).decode(), keep_blank_values=True)
        params |= {key: values[-1] for key, values in form.items()}
    return params


def make_app(fake: FakeSlack) -> Starlette:
    """The fake as an ASGI app, recording every Web API call in ``fake.calls``."""

    async def method(request: Request) -> Response:
        name = request.path_params["method"]
        params = await _params(request)
        fake.calls.append((name, params))
        scheme, _, bearer = request.headers.get("authorization", "").partition(" ")
        token = bearer.strip() if scheme.lower() == "bearer" else str(params.get("token", ""))
        try:
            result = fake.call(name, token=token, params=params)
        except ApiError as error:
            return error.response()
        return JSONResponse({"ok": True, **result})

    async def response_url(request: Request) -> Response:
        fake.responses.append(json.loads(await request.body() or b"{}"))
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            Route("/api/{method}", method, methods=["GET", "POST"]),
            Route("/actions/{rest:path}", response_url, methods=["POST"]),
        ]
    )
