"""The Telegram channel over aiogram 3: long polling or webhook in, the outbox out.

Inbound, every update is handed to the host (which keeps it in the inbox) before the
polling offset moves past it, so a crash never loses an accepted message and a redelivered
update is recognised by its id. Button presses are decisions: the host checks the presser
against the approvers and the answer pops up on the presser's screen only.

Outbound, ``prepare`` renders a reply to Telegram HTML and splits it at 4,096 characters
when it is queued, so each chunk is its own outbox row and is sent exactly once; ``deliver``
sends one row, paced to Telegram's limits, and maps Telegram's errors to retry (429 with
``retry_after``, network, 5xx) or refusal (bad request, blocked, chat gone).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.types import CallbackQuery, Message, ReplyParameters, Update

from channels.health import ChannelHealth
from channels.pacing import SendPacer
from channels.telegram.normalize import PLATFORM, BotIdentity, message_ref, normalize, parse_ref
from channels.telegram.pacing import telegram_pacer
from channels.telegram.render import (
    TelegramText,
    approval_message,
    outcome_message,
    parse_callback,
    reply_messages,
)
from core.config import TelegramSection
from core.errors import DeliveryRefused, DeliveryRetry
from core.ports import ChannelHost
from core.types import ConversationKey, OutboundItem

log = logging.getLogger("switchboard.channels.telegram")

ALLOWED_UPDATES = ["message", "callback_query"]
POLL_TIMEOUT_S = 25
MAX_BACKOFF_S = 60.0
PREVIEW_MAX_CHARS = 4000  # of a streamed preview (the final answer is split properly)


class TelegramChannel:
    """One bot: polling or webhook, sending, approval buttons, status."""

    name = PLATFORM

    def __init__(self, settings: TelegramSection, *, pacer: SendPacer | None = None) -> None:
        self._settings = settings
        # Telegram answers concurrent long polls of one bot with 409 Conflict; webhooks can
        # land on any replica.
        self.single_session = settings.mode != "webhook"
        api = TelegramAPIServer.from_base(settings.api_base.rstrip("/"))
        self.bot = Bot(settings.token.reveal(), session=AiohttpSession(api=api))
        self._pacer = pacer or telegram_pacer()
        self._host: ChannelHost | None = None
        self._identity: BotIdentity | None = None
        self._health = ChannelHealth("telegram")

    # -- inbound ---------------------------------------------------------------------

    async def run(self, host: ChannelHost) -> None:
        """Connect and feed every update to ``host`` until cancelled."""
        self._host = host
        await self._connect()
        if self._settings.mode == "webhook":
            await self._set_webhook()
            await asyncio.Event().wait()  # updates arrive through handle_webhook
        await self.bot.delete_webhook(drop_pending_updates=False)
        # Connected from here: the first long poll may wait its full timeout for an update.
        self._health.ok("connected (polling)")
        await self._poll()

    async def _connect(self) -> None:
        backoff = 1.0
        while True:
            try:
                me = await self.bot.get_me()
            except TelegramUnauthorizedError:
                self._health.failing("unauthorized: check [channels.telegram] token")
                raise
            except (TelegramNetworkError, TelegramServerError, TelegramRetryAfter) as exc:
                self._health.failing(f"cannot reach Telegram: {exc}")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            self._identity = BotIdentity(id=me.id, username=me.username or "")
            return

    async def _set_webhook(self) -> None:
        secret = self._settings.secret_token
        await self.bot.set_webhook(
            url=self._settings.webhook_url or "",
            secret_token=secret.reveal() if secret else None,
            allowed_updates=ALLOWED_UPDATES,
        )
        self._health.ok("connected (webhook)")

    async def _poll(self) -> None:
        offset: int | None = None
        backoff = 1.0
        while True:
            try:
                updates = await self.bot.get_updates(
                    offset=offset,
                    timeout=POLL_TIMEOUT_S,
                    allowed_updates=ALLOWED_UPDATES,
                    request_timeout=POLL_TIMEOUT_S + 15,
                )
            except TelegramRetryAfter as exc:
                await asyncio.sleep(exc.retry_after)
                continue
            except (TelegramNetworkError, TelegramServerError) as exc:
                self._health.failing(f"polling failed: {exc}")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            backoff = 1.0
            self._health.ok("connected (polling)")
            for update in updates:
                await self.on_update(update)  # kept before the offset moves past it
                offset = update.update_id + 1

    async def handle_webhook(self, payload: Mapping[str, Any]) -> None:
        """One update POSTed by Telegram (the secret token is checked by the route)."""
        await self.on_update(Update.model_validate(payload, context={"bot": self.bot}))

    async def on_update(self, update: Update) -> None:
        """A message goes to the host; a button press becomes a decision."""
        if self._host is None or self._identity is None:
            raise RuntimeError("the Telegram channel is not running")
        if update.message is not None:
            message = normalize(update.message, self._identity)
            if message is not None:
                await self._host.receive(message)
        elif update.callback_query is not None:
            await self._on_button(update.callback_query)

    async def _on_button(self, query: CallbackQuery) -> None:
        parsed = parse_callback(query.data)
        if parsed is None or self._host is None:
            await self.bot.answer_callback_query(query.id, text="This button is not mine.")
            return
        approval_id, approve = parsed
        outcome = await self._host.decide(
            approval_id=approval_id, approve=approve, decider=f"{PLATFORM}:{query.from_user.id}"
        )
        # A refusal is an alert for the presser alone; nobody else sees it.
        await self.bot.answer_callback_query(
            query.id, text=outcome.message[:200], show_alert=not outcome.ok
        )

    # -- outbound --------------------------------------------------------------------

    def prepare(self, item: OutboundItem) -> list[OutboundItem]:
        """A reply rendered and split into rows of at most one Telegram message each."""
        if item.kind != "reply" or item.markup == "platform":
            return [item]
        chunks = reply_messages(item.text)
        return [
            item.model_copy(
                update={
                    "text": chunk.html,
                    "markup": "platform",
                    "in_reply_to": item.in_reply_to if index == 0 else None,
                    "edit_message_id": item.edit_message_id if index == 0 else None,
                }
            )
            for index, chunk in enumerate(chunks)
        ]

    async def deliver(self, item: OutboundItem, *, edit_message_id: str | None) -> str:
        """Send one outbox row; returns ``chat_id:message_id``."""
        try:
            return await self._deliver(item, edit_message_id)
        except TelegramRetryAfter as exc:
            raise DeliveryRetry(exc.message, retry_after=float(exc.retry_after)) from None
        except (TelegramNetworkError, TelegramServerError) as exc:
            raise DeliveryRetry(str(exc)) from None
        except (TelegramForbiddenError, TelegramNotFound, TelegramUnauthorizedError) as exc:
            raise DeliveryRefused(str(exc)) from None
        except TelegramBadRequest as exc:
            raise DeliveryRefused(exc.message) from None

    async def _deliver(self, item: OutboundItem, edit_message_id: str | None) -> str:
        key = item.conversation
        if item.kind == "approval":
            return await self._send(key, approval_message(item), None)
        if item.kind == "approval_update":
            text = outcome_message(item)
            target = parse_ref(edit_message_id)
            if target is None:
                return await self._send(key, text, None)
            await self._edit(key, target[1], text)
            return edit_message_id or ""
        chunks = (
            [TelegramText(item.text)] if item.markup == "platform" else reply_messages(item.text)
        )
        sent = ""
        preview = parse_ref(edit_message_id)
        if preview is not None and chunks:
            # The answer replaces its streamed preview; any further chunks follow it.
            await self._edit(key, preview[1], chunks[0])
            sent = edit_message_id or ""
            chunks = chunks[1:]
        reply_to = parse_ref(item.in_reply_to) if not sent else None
        for index, chunk in enumerate(chunks):
            sent = await self._send(key, chunk, reply_to[1] if reply_to and index == 0 else None)
        return sent

    async def preview(
        self, key: ConversationKey, text: str, *, message_id: str | None, in_reply_to: str | None
    ) -> str:
        """Show an answer while it streams: sent once, then edited; returns its ref.

        Plain text (no parse mode): half a Markdown answer is not valid markup yet. The final
        answer, rendered, replaces it through the outbox.
        """
        shown = text if len(text) <= PREVIEW_MAX_CHARS else text[: PREVIEW_MAX_CHARS - 1] + "…"
        await self._pacer.wait(key.chat)
        target = parse_ref(message_id)
        if target is not None:
            try:
                await self.bot.edit_message_text(text=shown, chat_id=key.chat, message_id=target[1])
            except TelegramBadRequest as exc:
                if "message is not modified" not in exc.message:
                    raise
            return message_id or ""
        reply_to = parse_ref(in_reply_to)
        message = await self.bot.send_message(
            chat_id=key.chat,
            text=shown,
            message_thread_id=int(key.thread) if key.thread else None,
            reply_parameters=(
                ReplyParameters(message_id=reply_to[1], allow_sending_without_reply=True)
                if reply_to is not None
                else None
            ),
        )
        return _ref_of(message)

    async def _send(self, key: ConversationKey, text: TelegramText, reply_to: int | None) -> str:
        await self._pacer.wait(key.chat)
        message = await self.bot.send_message(
            chat_id=key.chat,
            text=text.html,
            parse_mode="HTML",
            message_thread_id=int(key.thread) if key.thread else None,
            reply_markup=text.keyboard,
            reply_parameters=(
                ReplyParameters(message_id=reply_to, allow_sending_without_reply=True)
                if reply_to is not None
                else None
            ),
            link_preview_options=None,
        )
        return _ref_of(message)

    async def _edit(self, key: ConversationKey, message_id: int, text: TelegramText) -> None:
        await self._pacer.wait(key.chat)
        try:
            await self.bot.edit_message_text(
                text=text.html,
                chat_id=key.chat,
                message_id=message_id,
                parse_mode="HTML",
                reply_markup=text.keyboard,
            )
        except TelegramBadRequest as exc:
            if "message is not modified" not in exc.message:
                raise  # the same edit twice (a repeated decision) is already done

    async def typing(self, key: ConversationKey) -> None:
        """Show "typing..." while an answer is being prepared (best effort)."""
        try:
            await self.bot.send_chat_action(
                chat_id=key.chat,
                action="typing",
                message_thread_id=int(key.thread) if key.thread else None,
            )
        except (TelegramNetworkError, TelegramServerError, TelegramBadRequest, TelegramRetryAfter):
            pass  # a missing indicator is no reason to delay the answer

    # -- health ----------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """State for ``/api/channels`` and ``/readyz``."""
        return {
            "name": PLATFORM,
            "mode": self._settings.mode,
            **self._health.as_dict(),
            "bot": self._identity.username if self._identity else None,
        }

    async def close(self) -> None:
        """Close the HTTP session."""
        await self.bot.session.close()


def _ref_of(message: Message) -> str:
    return message_ref(message.chat.id, message.message_id)
