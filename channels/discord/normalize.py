"""Discord events in, normalized messages out: who wrote what, where, to whom.

In a DM every message is for the bot. In a guild channel (or a thread, which Discord makes
a channel of its own) the bot answers only when it is addressed: mentioned (``<@bot id>``,
which is stripped from the text; ``@everyone`` is not addressing it) or replied to. Messages
from bots and webhooks, the bot's own included, and system messages are ignored. The
platform message id is Discord's snowflake, unique across Discord and the same on every
redelivery; ``/ask`` slash commands are messages too, with the interaction's id.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, cast

import discord

from core.types import ConversationKey, InboundMessage, Sender

PLATFORM = "discord"
ASK_COMMAND = "ask"
ASK_OPTION = "question"
_USER_MESSAGES = (discord.MessageType.default, discord.MessageType.reply)


def message_ref(channel_id: int | str, message_id: int | str) -> str:
    """How the outbox remembers a message the bot sent: ``channel_id:message_id``."""
    return f"{channel_id}:{message_id}"


def parse_ref(ref: str | None) -> tuple[int, int] | None:
    """(channel id, message id) of a ``message_ref``, or None."""
    channel, _, message = (ref or "").partition(":")
    if not (channel.isdigit() and message.isdigit()):
        return None
    return int(channel), int(message)


def sender_of(user: discord.User | discord.Member) -> Sender:
    """The sender as the access policy and the approvers list name it."""
    return Sender(
        platform=PLATFORM,
        user_id=str(user.id),
        display_name=user.display_name or user.name,
        is_bot=user.bot,
    )


def _mentions_bot(message: discord.Message, bot_id: int) -> bool:
    # Not ``ClientUser.mentioned_in``: that counts @everyone, which is not a question to us.
    return any(user.id == bot_id for user in message.mentions) or bot_id in message.raw_mentions


def _replies_to_bot(message: discord.Message, bot_id: int) -> bool:
    reference = message.reference
    resolved = reference.resolved if reference is not None else None
    return isinstance(resolved, discord.Message) and resolved.author.id == bot_id


def strip_mention(text: str, bot_id: int) -> str:
    """``text`` without the mentions of the bot (``<@id>`` and the older ``<@!id>``)."""
    stripped = re.sub(rf"<@!?{bot_id}>", " ", text)
    return re.sub(r"[ \t]{2,}", " ", stripped).strip().lstrip(",:").strip()


def normalize_message(message: discord.Message, *, bot_id: int) -> InboundMessage | None:
    """The message as the orchestrator takes it, or None when it is not for the bot."""
    author = message.author
    text = message.content or ""
    if author.bot or author.system or message.webhook_id is not None:
        return None
    if message.type not in _USER_MESSAGES or not text.strip():
        return None
    is_direct = isinstance(message.channel, discord.DMChannel)
    mentioned = _mentions_bot(message, bot_id)
    if not (is_direct or mentioned or _replies_to_bot(message, bot_id)):
        return None
    reference = message.reference
    return InboundMessage(
        platform=PLATFORM,
        message_id=str(message.id),
        conversation=ConversationKey(platform=PLATFORM, chat=str(message.channel.id)),
        sender=sender_of(author),
        text=strip_mention(text, bot_id) or text,
        is_direct=is_direct,
        mentions_bot=mentioned,
        reply_to_message_id=(
            str(reference.message_id) if reference and reference.message_id else None
        ),
        received_at=message.created_at,
    )


def interaction_data(interaction: discord.Interaction) -> Mapping[str, Any]:
    """The raw ``data`` of an interaction (discord.py types it as a union of TypedDicts)."""
    return cast(Mapping[str, Any], interaction.data or {})


def command_question(interaction: discord.Interaction) -> str | None:
    """The question of an ``/ask question:...`` interaction, or None for anything else."""
    data = interaction_data(interaction)
    if data.get("name") != ASK_COMMAND:
        return None
    for option in data.get("options") or ():
        if option.get("name") == ASK_OPTION and isinstance(option.get("value"), str):
            value = str(option.get("value"))
            return value.strip() or None
    return None


def normalize_command(interaction: discord.Interaction, *, question: str) -> InboundMessage:
    """``/ask`` as a message to the bot; its id is the interaction's."""
    return InboundMessage(
        platform=PLATFORM,
        message_id=str(interaction.id),
        conversation=ConversationKey(platform=PLATFORM, chat=str(interaction.channel_id)),
        sender=sender_of(interaction.user),
        text=question,
        is_direct=interaction.guild_id is None,
        mentions_bot=True,
        received_at=interaction.created_at,
    )
