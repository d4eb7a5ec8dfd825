"""Telegram's sending limits (Bot API FAQ): about one message a second in a chat, twenty a
minute in a group, thirty a second over all chats."""

from __future__ import annotations

from channels.pacing import SendPacer

PRIVATE_INTERVAL_S = 1.0
GROUP_INTERVAL_S = 3.0  # 20 a minute
GLOBAL_PER_SECOND = 30


def _interval(chat_id: str) -> float:
    # Group and channel ids are negative; a private chat's id is the user's (positive).
    return GROUP_INTERVAL_S if chat_id.startswith("-") else PRIVATE_INTERVAL_S


def telegram_pacer() -> SendPacer:
    """A pacer with Telegram's figures."""
    return SendPacer(interval_for=_interval, per_second=GLOBAL_PER_SECOND)
