"""Telegram updates in, normalized messages out: who wrote what, where, to whom.

In a private chat every message is for the bot. In a group the bot answers only when it
is addressed: mentioned (``@bot_username``), replied to, or sent a command (``/help``, or
``/help@bot_username``; a command for another bot is not ours). Messages from bots, the
bot's own included, are ignored. The platform message id is ``chat_id:message_id``
(unique per chat, the same on every redelivery), so the reply can quote it.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiogram.types import Message, User

from core.types import ConversationKey, InboundMessage, Sender

PLATFORM = "telegram"


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """Who the bot is, from ``getMe``."""

    id: int
    username: str


def message_ref(chat_id: int | str, message_id: int | str) -> str:
    """The platform message id of a Telegram message."""
    return f"{chat_id}:{message_id}"


def parse_ref(ref: str | None) -> tuple[str, int] | None:
    """(chat id, message id) of a platform message id, or None."""
    if not ref or ":" not in ref:
        return None
    chat, _, message = ref.rpartition(":")
    return (chat, int(message)) if message.isdigit() else None


def conversation_of(message: Message) -> ConversationKey:
    """The conversation: the chat, and the forum topic when there is one."""
    thread = (
        str(message.message_thread_id)
        if message.is_topic_message and message.message_thread_id
        else None
    )
    return ConversationKey(platform=PLATFORM, chat=str(message.chat.id), thread=thread)


def sender_of(user: User) -> Sender:
    """The sender as the access policy and the approvers list name it."""
    name = user.full_name or user.username or str(user.id)
    return Sender(platform=PLATFORM, user_id=str(user.id), display_name=name, is_bot=user.is_bot)


def _mentions(message: Message, text: str, bot: BotIdentity) -> bool:
    handle = f"@{bot.username}".lower()
    for entity in message.entities or ():
        if entity.type == "mention":
            if text[entity.offset : entity.offset + entity.length].lower() == handle:
                return True
        if entity.type == "text_mention" and entity.user and entity.user.id == bot.id:
            return True
    return False


def _command_for_us(text: str, bot: BotIdentity) -> bool:
    if not text.startswith("/"):
        return False
    first = text.split(maxsplit=1)[0]
    _, at, target = first.partition("@")
    return not at or target.lower() == bot.username.lower()


def _strip_mention(text: str, bot: BotIdentity) -> str:
    handle = f"@{bot.username}"
    if text.lower().startswith(handle.lower()):
        return text[len(handle) :].lstrip(" ,:")
    return text


def normalize(message: Message, bot: BotIdentity) -> InboundMessage | None:
    """The message as the orchestrator takes it, or None when it is not for the bot."""
    user = message.from_user
    text = message.text or message.caption or ""
    if user is None or user.is_bot or not text.strip():
        return None
    is_direct = message.chat.type == "private"
    replied = message.reply_to_message
    to_bot = bool(replied and replied.from_user and replied.from_user.id == bot.id)
    mentioned = _mentions(message, text, bot)
    if not (is_direct or mentioned or to_bot or _command_for_us(text, bot)):
        return None
    return InboundMessage(
        platform=PLATFORM,
        message_id=message_ref(message.chat.id, message.message_id),
        conversation=conversation_of(message),
        sender=sender_of(user),
        text=_strip_mention(text, bot).strip() or text,
        is_direct=is_direct,
        mentions_bot=mentioned,
        reply_to_message_id=(
            message_ref(message.chat.id, replied.message_id) if replied is not None else None
        ),
        received_at=message.date,
    )
