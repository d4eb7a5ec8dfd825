"""Slack events in, normalized messages out: who wrote what, where, and in which thread.

Two events reach the bot: ``app_mention`` (someone wrote ``<@BOT>`` in a channel) and
``message`` in a direct message (``message.im``). Every other ``message`` event is ignored:
in a channel, the mention already arrives as ``app_mention``, and edits, joins, bot posts
and the other subtypes are not things to answer. The bot's own messages and other bots'
are ignored too.

The platform message id is ``channel:ts``, the same for the ``app_mention`` and the
``message.im`` of one message and on every Events API retry, so the inbox dedupes them.
In a channel the conversation is the thread (the message's ``thread_ts``, or its own
``ts``, which starts the thread the answer goes to). In a direct message it is the whole
chat and the answer comes in the chat, unless the user wrote in a thread, which is then
the conversation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.types import ConversationKey, InboundMessage, Sender

PLATFORM = "slack"


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """Who the bot is, from ``auth.test``."""

    user_id: str
    bot_id: str
    name: str
    team: str = ""


def message_ref(channel: str, ts: str) -> str:
    """The platform message id of a Slack message."""
    return f"{channel}:{ts}"


def parse_ref(ref: str | None) -> tuple[str, str] | None:
    """(channel, ts) of a platform message id, or None."""
    if not ref or ":" not in ref:
        return None
    channel, _, ts = ref.partition(":")
    return (channel, ts) if channel and ts else None


def is_direct_channel(event: Mapping[str, Any]) -> bool:
    """A direct message: ``channel_type`` says so, or the channel id does (``D...``)."""
    if event.get("channel_type") == "im":
        return True
    return str(event.get("channel", "")).startswith("D")


def _mention_pattern(bot: BotIdentity) -> re.Pattern[str]:
    return re.compile(rf"<@{re.escape(bot.user_id)}(?:\|[^>]*)?>")


def strip_mention(text: str, bot: BotIdentity) -> str:
    """``text`` without the bot's ``<@ID>`` mentions (and the punctuation after a leading one)."""
    stripped = _mention_pattern(bot).sub(" ", text)
    return re.sub(r"[ \t]{2,}", " ", stripped).strip().lstrip(",:").strip()


def _received_at(ts: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(ts), tz=UTC)
    except ValueError:
        return None


def _from_a_bot(event: Mapping[str, Any], bot: BotIdentity) -> bool:
    return bool(
        event.get("bot_id")
        or event.get("bot_profile")
        or event.get("subtype") == "bot_message"
        or event.get("user") == bot.user_id
    )


def normalize(event: Mapping[str, Any], bot: BotIdentity) -> InboundMessage | None:
    """The event as the orchestrator takes it, or None when it is not for the bot."""
    kind = event.get("type")
    if kind not in ("app_mention", "message") or _from_a_bot(event, bot):
        return None
    if event.get("subtype") is not None:  # edits, deletions, joins ...: nothing to answer
        return None
    channel, ts, user = event.get("channel"), event.get("ts"), event.get("user")
    text = str(event.get("text") or "")
    if not (isinstance(channel, str) and isinstance(ts, str) and isinstance(user, str)):
        return None
    is_direct = is_direct_channel(event)
    if kind == "message" and not is_direct:
        return None  # in a channel only a mention is for the bot, and it comes as app_mention
    mentioned = kind == "app_mention" or bool(_mention_pattern(bot).search(text))
    clean = strip_mention(text, bot)
    if not clean:
        return None
    thread_ts = event.get("thread_ts")
    thread = str(thread_ts) if thread_ts else None
    key = ConversationKey(
        platform=PLATFORM, chat=channel, thread=thread if is_direct else (thread or ts)
    )
    return InboundMessage(
        platform=PLATFORM,
        message_id=message_ref(channel, ts),
        conversation=key,
        sender=Sender(platform=PLATFORM, user_id=user, display_name=user),
        text=clean,
        is_direct=is_direct,
        mentions_bot=mentioned,
        reply_to_message_id=(
            message_ref(channel, thread) if thread is not None and thread != ts else None
        ),
        received_at=_received_at(ts),
    )
