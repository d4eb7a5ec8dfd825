"""The Slack channel over slack-bolt (asyncio): Events API or Socket Mode in, the outbox out.

Inbound, every event goes through one ``AsyncApp``. In HTTP mode the gateway's
``POST /slack/events`` route hands the raw body and headers to :meth:`SlackChannel.handle_http`;
bolt checks the v0 signature and its 5-minute window (a forged or stale request gets 401
and reaches no listener), answers ``url_verification``, and runs the listener. In Socket
Mode bolt's socket handler does the same over the websocket. The app runs with
``process_before_response``, so Slack's acknowledgement (the HTTP answer, or the envelope
ack) goes only after the listener: a message is in the inbox (``host.receive``, one quick
insert) before Slack hears it arrived, so a crash never loses an acknowledged event and a
retry is recognised by its ``channel:ts`` id. A button press is a decision (``host.decide``,
quick); the answer for the presser alone (``chat.postEphemeral``) is sent after the
acknowledgement, by a worker this channel owns.

Outbound, ``prepare`` renders a reply to mrkdwn and splits it when it is queued, so each
chunk is its own outbox row and is sent exactly once; ``deliver`` sends one row and maps
Slack's errors to retry (429 with ``Retry-After``, 5xx, network) or refusal (the rest).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from channels.approval_buttons import BUTTON_PREFIX
from channels.health import ChannelHealth
from channels.markup import SLACK_LIMIT
from channels.markup.slack import escape_mrkdwn
from channels.pacing import SendPacer
from channels.slack.errors import delivery_error, slack_error
from channels.slack.normalize import PLATFORM, BotIdentity, message_ref, normalize, parse_ref
from channels.slack.notices import EphemeralNotices
from channels.slack.render import (
    SlackText,
    approval_message,
    outcome_message,
    parse_action,
    reply_messages,
)
from channels.slack.socket import SocketModeRunner
from core.config import SlackSection
from core.ports import ChannelHost
from core.types import ConversationKey, OutboundItem

log = logging.getLogger("switchboard.channels.slack")

WEB_TIMEOUT_S = 15
MAX_BACKOFF_S = 60.0
CHANNEL_INTERVAL_S = 1.0
_AUTH_ERRORS = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked"})
Response = tuple[int, dict[str, str], bytes]


class SlackChannel:
    """One Slack app: Events API or Socket Mode, sending, approval buttons, status."""

    name = PLATFORM

    def __init__(self, settings: SlackSection, *, ping_interval_s: float = 10.0) -> None:
        self._settings = settings
        # Slack spreads an app's events over all its open Socket Mode connections: one
        # connection keeps a conversation's events in order in one place. HTTP mode events
        # can land on any replica.
        self.single_session = settings.mode == "socket"
        self._ping_interval_s = ping_interval_s
        # No retries inside the client: the outbox retries, and a resent post is a duplicate.
        self.web = AsyncWebClient(
            token=settings.bot_token.reveal(),
            base_url=settings.api_base,
            timeout=WEB_TIMEOUT_S,
            retry_handlers=[],
        )
        secret = settings.signing_secret
        self._app = AsyncApp(
            name="switchboard",
            client=self.web,
            signing_secret=secret.reveal() if secret is not None else "",
            process_before_response=True,
            request_verification_enabled=settings.mode == "http",
            logger=logging.getLogger("switchboard.channels.slack.bolt"),
        )
        self._app.event("app_mention")(self._on_message_event)
        self._app.event("message")(self._on_message_event)
        self._app.action(re.compile(rf"^{BUTTON_PREFIX}:[yn]:"))(self._on_button)
        # Anything else Slack sends is acknowledged, so it is not retried for nothing.
        self._app.event(re.compile(".*"))(self._acknowledge)
        self._app.action(re.compile(".*"))(self._acknowledge)
        self._notices = EphemeralNotices(self.web)
        # chat.postMessage allows about one message a second per channel (Slack's rate
        # limits, "special" tier); updates are paced the same way, so bursts queue here.
        self._pacer = SendPacer(interval_for=lambda _: CHANNEL_INTERVAL_S)
        self._host: ChannelHost | None = None
        self._identity: BotIdentity | None = None
        self._session: aiohttp.ClientSession | None = None
        self._health = ChannelHealth("slack")

    # -- inbound ---------------------------------------------------------------------

    async def run(self, host: ChannelHost) -> None:
        """Check the token, then take events (HTTP or Socket Mode) until cancelled."""
        self._host = host
        if self._session is None:
            self._session = aiohttp.ClientSession()
            self.web.session = self._session
        await self._connect()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._notices.run())
            if self._settings.mode == "socket":
                app_token = self._settings.app_token
                if app_token is None:  # the config refuses this; kept for the type checker
                    raise RuntimeError("[channels.slack] mode 'socket' needs app_token")
                runner = SocketModeRunner(
                    self._app,
                    app_token=app_token.reveal(),
                    web=self.web,
                    ping_interval_s=self._ping_interval_s,
                    report=self._socket_state,
                )
                tasks.create_task(runner.run())
            else:
                self._health.ok("connected (http)")

    async def _connect(self) -> None:
        backoff = 1.0
        while True:
            try:
                me = await self.web.auth_test()
            except SlackApiError as exc:
                error = slack_error(exc)
                if error in _AUTH_ERRORS:
                    self._health.failing(
                        f"unauthorized ({error}): check [channels.slack] bot_token"
                    )
                else:
                    self._health.failing(f"auth.test failed: {error}")
            except (aiohttp.ClientError, TimeoutError) as exc:
                self._health.failing(f"cannot reach Slack: {type(exc).__name__}: {exc}")
            else:
                self._identity = BotIdentity(
                    user_id=str(me.get("user_id", "")),
                    bot_id=str(me.get("bot_id", "")),
                    name=str(me.get("user", "")),
                    team=str(me.get("team", "")),
                )
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def handle_http(self, body: bytes, headers: Mapping[str, str]) -> Response:
        """One POST from Slack (an event or an interaction): bolt's status, headers, body."""
        if self._host is None:
            # Not running yet: a 503 makes Slack retry the event a little later.
            return 503, {"content-type": "text/plain"}, b"the Slack channel is starting"
        request = AsyncBoltRequest(
            body=body.decode("utf-8", errors="replace"), headers=dict(headers), mode="http"
        )
        retry = headers.get("x-slack-retry-num")
        if retry:
            log.info(
                "event=slack_retry retry=%s reason=%s", retry, headers.get("x-slack-retry-reason")
            )
        response = await self._app.async_dispatch(request)
        return response.status, response.first_headers_without_set_cookie(), response.body.encode()

    async def _on_message_event(
        self, ack: AsyncAck, event: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        identity = self._identity or BotIdentity(
            user_id=context.bot_user_id or "", bot_id=context.bot_id or "", name=""
        )
        message = normalize(event, identity)
        if message is not None and self._host is not None:
            await self._host.receive(message)  # kept before Slack hears it arrived
        await ack()

    async def _on_button(self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]) -> None:
        parsed = parse_action(action.get("value"))
        user = str((body.get("user") or {}).get("id", ""))
        channel = str((body.get("channel") or {}).get("id", ""))
        thread_ts = (body.get("message") or {}).get("thread_ts")
        if parsed is None or self._host is None or not user:
            await ack()
            return
        approval_id, approve = parsed
        outcome = await self._host.decide(
            approval_id=approval_id, approve=approve, decider=f"{PLATFORM}:{user}"
        )
        await ack()
        if channel:
            self._notices.put(channel=channel, user=user, text=outcome.message, thread_ts=thread_ts)

    async def _acknowledge(self, ack: AsyncAck) -> None:
        await ack()

    # -- outbound --------------------------------------------------------------------

    def prepare(self, item: OutboundItem) -> list[OutboundItem]:
        """A reply rendered and split into rows of at most one Slack message each."""
        if item.kind != "reply" or item.markup == "platform":
            return [item]
        return [
            item.model_copy(
                update={
                    "text": chunk.text,
                    "markup": "platform",
                    "in_reply_to": item.in_reply_to if index == 0 else None,
                    "edit_message_id": item.edit_message_id if index == 0 else None,
                }
            )
            for index, chunk in enumerate(reply_messages(item.text))
        ]

    async def deliver(self, item: OutboundItem, *, edit_message_id: str | None) -> str:
        """Send one outbox row; returns ``channel:ts``."""
        try:
            return await self._deliver(item, edit_message_id)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            raise delivery_error(exc) from None

    async def _deliver(self, item: OutboundItem, edit_message_id: str | None) -> str:
        key = item.conversation
        if item.kind == "approval":
            return await self._post(key, approval_message(item))
        if item.kind == "approval_update":
            outcome = outcome_message(item)
            target = parse_ref(edit_message_id)
            if target is None:
                return await self._post(key, outcome)
            await self._pacer.wait(key.chat)
            await self.web.chat_update(
                channel=target[0], ts=target[1], text=outcome.text, blocks=outcome.blocks
            )
            return message_ref(*target)
        chunks = [SlackText(item.text)] if item.markup == "platform" else reply_messages(item.text)
        sent = ""
        preview = parse_ref(edit_message_id)
        if preview is not None and chunks:
            # The answer replaces its streamed preview; any further chunks follow it.
            await self._pacer.wait(key.chat)
            await self.web.chat_update(channel=preview[0], ts=preview[1], text=chunks[0].text)
            sent, chunks = message_ref(*preview), chunks[1:]
        for chunk in chunks:
            sent = await self._post(key, chunk)
        return sent

    async def preview(
        self, key: ConversationKey, text: str, *, message_id: str | None, in_reply_to: str | None
    ) -> str:
        """Show an answer while it streams: posted once in its thread, then edited.

        Unformatted (``mrkdwn: false``): half a Markdown answer is not valid markup yet. The
        final answer, rendered, replaces it through the outbox.
        """
        shown = text if len(text) <= SLACK_LIMIT else text[: SLACK_LIMIT - 1] + "…"
        shown = escape_mrkdwn(shown)  # &, < and > are control characters even unformatted
        target = parse_ref(message_id)
        await self._pacer.wait(key.chat)
        if target is not None:
            await self.web.chat_update(channel=target[0], ts=target[1], text=shown)
            return message_ref(*target)
        response = await self.web.chat_postMessage(
            channel=key.chat, text=shown, thread_ts=key.thread, mrkdwn=False
        )
        return message_ref(str(response.get("channel", key.chat)), str(response["ts"]))

    async def _post(self, key: ConversationKey, message: SlackText) -> str:
        await self._pacer.wait(key.chat)
        response = await self.web.chat_postMessage(
            channel=key.chat,
            text=message.text,
            blocks=message.blocks or None,
            thread_ts=key.thread,
        )
        return message_ref(str(response.get("channel", key.chat)), str(response["ts"]))

    async def typing(self, key: ConversationKey) -> None:
        """Slack shows no typing indicator for a bot's Web API posts: nothing to do."""

    # -- health ----------------------------------------------------------------------

    def _socket_state(self, state: str, problem: str | None) -> None:
        if problem is None:
            self._health.ok(state)
        else:
            self._health.failing(problem)

    def status(self) -> dict[str, Any]:
        """State for ``/api/channels`` and ``/readyz``."""
        return {
            "name": PLATFORM,
            "mode": self._settings.mode,
            **self._health.as_dict(),
            "bot": self._identity.name if self._identity else None,
            "team": self._identity.team if self._identity else None,
        }

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None
            self.web.session = None
