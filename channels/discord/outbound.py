"""Outbox rows onto Discord: replies, approval buttons and their outcome, /ask answers.

Each row is sent with discord.py's documented calls (``PartialMessageable.send``,
``PartialMessage.edit``, ``Interaction.edit_original_response``) and one error mapping:
discord.py waits out 429s shorter than its ``max_ratelimit_timeout`` itself (the same payload
and nonce again) and raises ``RateLimited`` for longer ones, which become
``DeliveryRetry(retry_after)``, as do 429s it gave up on, 5xx and network errors; any other
4xx (403 missing access, 404 unknown channel or message, 400 invalid body) is refused for
good. A reply references the message it answers (``fail_if_not_exists`` false, so a deleted
question does not lose the answer); the reply to an ``/ask`` replaces its "thinking..."
placeholder while the interaction token is valid, and later replies reference that answer.
A slow answer is previewed while it streams (one plain message, edited); the reply row then
carries the preview's ref as ``edit_message_id`` and its first chunk edits it in place.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

import aiohttp
import discord

from channels.discord.nonces import SendNonces
from channels.discord.normalize import message_ref, parse_ref
from channels.discord.render import (
    ALLOWED_MENTIONS,
    approval_content,
    approval_view,
    outcome_content,
    reply_chunks,
)
from channels.markup import DISCORD_LIMIT
from core.errors import DeliveryRefused, DeliveryRetry
from core.types import ConversationKey, OutboundItem

SEND_TIMEOUT_S = 60.0  # one delivery, discord.py's own 429 waits included
PREVIEW_TIMEOUT_S = 10.0  # one preview update; the stream waits for it
NO_MENTIONS = discord.AllowedMentions.none()  # a preview notifies nobody, not even the asker
COMMAND_TOKEN_S = 14 * 60.0  # an interaction token works for 15 minutes
NETWORK_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)
_REMEMBERED = 1024


def prepare_rows(item: OutboundItem) -> list[OutboundItem]:
    """A reply rendered and split into rows of at most one Discord message each."""
    if item.kind != "reply" or item.markup == "platform":
        return [item]
    return [
        item.model_copy(
            update={
                "text": chunk,
                "markup": "platform",
                "in_reply_to": item.in_reply_to if index == 0 else None,
                # Only the first chunk replaces the streamed preview; the rest are new messages.
                "edit_message_id": item.edit_message_id if index == 0 else None,
            }
        )
        for index, chunk in enumerate(reply_chunks(item.text))
    ]


class DiscordOutbound:
    """Sends outbox rows through a logged-in discord.py client."""

    def __init__(self) -> None:
        self._nonces = SendNonces()
        # /ask interactions waiting for their answer, and the answers' message ids.
        self._commands: OrderedDict[str, tuple[float, discord.Interaction]] = OrderedDict()
        self._answers: OrderedDict[str, int] = OrderedDict()

    def awaiting_answer(self, interaction: discord.Interaction) -> None:
        """``interaction`` was deferred: its answer is to replace the placeholder."""
        started = asyncio.get_running_loop().time()
        _remember(self._commands, str(interaction.id), (started, interaction))

    async def deliver(
        self, client: discord.Client, item: OutboundItem, *, edit_message_id: str | None
    ) -> str:
        """Send one row; returns ``channel_id:message_id``."""
        try:
            async with asyncio.timeout(SEND_TIMEOUT_S):
                return await self._deliver(client, item, edit_message_id)
        except discord.RateLimited as exc:
            raise DeliveryRetry(str(exc), retry_after=exc.retry_after) from None
        except discord.HTTPException as exc:  # Forbidden (403) and NotFound (404) included
            if exc.status == 429 or exc.status >= 500:
                raise DeliveryRetry(str(exc), retry_after=_retry_after(exc)) from None
            raise DeliveryRefused(f"{exc.status}: {exc.text}") from None
        except NETWORK_ERRORS as exc:
            raise DeliveryRetry(f"cannot reach Discord: {exc!r}") from None

    async def _deliver(
        self, client: discord.Client, item: OutboundItem, edit_message_id: str | None
    ) -> str:
        channel = client.get_partial_messageable(int(item.conversation.chat))
        if item.kind == "approval":
            return await self._send(channel, item, approval_content(item), view=approval_view(item))
        if item.kind == "approval_update":
            target = parse_ref(edit_message_id)
            if target is None:
                return await self._send(channel, item, outcome_content(item))
            partial = client.get_partial_messageable(target[0]).get_partial_message(target[1])
            await partial.edit(
                content=outcome_content(item), view=None, allowed_mentions=ALLOWED_MENTIONS
            )
            return edit_message_id or ""
        chunks = [item.text] if item.markup == "platform" else reply_chunks(item.text)
        preview = parse_ref(edit_message_id)
        sent = ""
        for part, chunk in enumerate(chunks):
            reply_to = item.in_reply_to if part == 0 else None
            answered = await self._answer_command(reply_to, chunk) if reply_to else None
            if answered is None and part == 0 and preview is not None:
                # The answer replaces its streamed preview; any further chunks follow it.
                await self._edit(client, preview, chunk, mentions=ALLOWED_MENTIONS)
                answered = message_ref(*preview)
            sent = answered or await self._send(channel, item, chunk, reply_to=reply_to, part=part)
        return sent

    async def preview(
        self,
        client: discord.Client,
        key: ConversationKey,
        text: str,
        *,
        message_id: str | None,
        in_reply_to: str | None,
    ) -> str:
        """Show an answer while it streams: sent once, then edited; returns its ref.

        Plain text as it comes (half a Markdown answer is not valid markup yet), pinging
        nobody; an ``/ask`` shows it in its "thinking..." placeholder. No nonce: a preview is
        not retried (one that fails is dropped), and the outbox row that replaces it has its own.
        """
        shown = text if len(text) <= DISCORD_LIMIT else text[: DISCORD_LIMIT - 1] + "\u2026"
        async with asyncio.timeout(PREVIEW_TIMEOUT_S):  # a stalled preview stalls the stream
            interaction = self._pending_command(in_reply_to)
            if interaction is not None:
                placeholder = await interaction.edit_original_response(
                    content=shown, allowed_mentions=NO_MENTIONS
                )
                channel_id = interaction.channel_id or placeholder.channel.id
                return message_ref(channel_id, placeholder.id)
            target = parse_ref(message_id)
            if target is not None:
                await self._edit(client, target, shown, mentions=NO_MENTIONS)
                return message_ref(*target)
            channel = client.get_partial_messageable(int(key.chat))
            message = await channel.send(
                shown,
                reference=self._reference(channel, in_reply_to),  # type: ignore[arg-type]
                allowed_mentions=NO_MENTIONS,
            )
            return message_ref(channel.id, message.id)

    async def _edit(
        self,
        client: discord.Client,
        target: tuple[int, int],
        content: str,
        *,
        mentions: discord.AllowedMentions,
    ) -> None:
        partial = client.get_partial_messageable(target[0]).get_partial_message(target[1])
        await partial.edit(content=content, allowed_mentions=mentions)

    def _reference(
        self, channel: discord.PartialMessageable, reply_to: str | None
    ) -> discord.MessageReference | None:
        """A reference to the message answered (or to an ``/ask``'s answer), if any."""
        target = self._answers.get(reply_to, reply_to) if reply_to else None
        if target is None or not str(target).isdigit():
            return None
        return discord.MessageReference(
            message_id=int(target), channel_id=channel.id, fail_if_not_exists=False
        )

    async def _send(
        self,
        channel: discord.PartialMessageable,
        item: OutboundItem,
        content: str,
        *,
        view: discord.ui.View | None = None,
        reply_to: str | None = None,
        part: int = 0,
    ) -> str:
        message = await channel.send(
            content,
            reference=self._reference(channel, reply_to),  # type: ignore[arg-type]  # None: not a reply
            view=view,  # type: ignore[arg-type]  # None: no components
            allowed_mentions=ALLOWED_MENTIONS,
            nonce=self._nonces.for_row(item, part),
        )
        self._nonces.done(item, part)
        return message_ref(channel.id, message.id)

    async def _answer_command(self, interaction_id: str, content: str) -> str | None:
        """Replace the "thinking..." of an ``/ask`` with its answer; None when it is too late."""
        interaction = self._pending_command(interaction_id)
        if interaction is None:
            return None
        try:
            message = await interaction.edit_original_response(
                content=content, allowed_mentions=ALLOWED_MENTIONS
            )
        except discord.NotFound:  # the token or the placeholder is gone: a plain reply
            self._commands.pop(interaction_id, None)
            return None
        self._commands.pop(interaction_id, None)
        _remember(self._answers, interaction_id, message.id)
        return message_ref(interaction.channel_id or message.channel.id, message.id)

    def _pending_command(self, interaction_id: str | None) -> discord.Interaction | None:
        """The deferred ``/ask`` ``interaction_id`` names, while its token is valid."""
        pending = self._commands.get(interaction_id) if interaction_id else None
        if pending is None or interaction_id is None:
            return None
        started, interaction = pending
        if asyncio.get_running_loop().time() - started > COMMAND_TOKEN_S:
            self._commands.pop(interaction_id, None)
            return None
        return interaction

    async def typing(self, client: discord.Client, key: ConversationKey) -> None:
        """Show "typing..." in ``key``'s channel (best effort)."""
        try:
            await client.get_partial_messageable(int(key.chat)).typing()
        except (discord.HTTPException, *NETWORK_ERRORS):
            pass  # a missing indicator is no reason to delay the answer


def _retry_after(exc: discord.HTTPException) -> float | None:
    header = exc.response.headers.get("Retry-After") if exc.response is not None else None
    try:
        return float(header) if header else None
    except ValueError:
        return None


def _remember(store: OrderedDict[str, Any], key: str, value: Any) -> None:
    store[key] = value
    while len(store) > _REMEMBERED:
        store.popitem(last=False)
