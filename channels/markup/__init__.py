"""Platform markup for the assistant's Markdown answers, and splitting at message limits.

Pure text functions: no network and no platform library. Each channel adapter renders an
answer with its ``to_*`` function and sends the pieces ``split_*`` returns::

    html = to_telegram_html(answer)
    for chunk in split_telegram_html(html):  # TELEGRAM_LIMIT UTF-16 units each
        ...
    for chunk in split_message(to_discord(answer), limit=DISCORD_LIMIT):
        ...
"""

from channels.markup.discord import to_discord
from channels.markup.slack import to_slack_mrkdwn
from channels.markup.split import (
    DISCORD_LIMIT,
    SLACK_LIMIT,
    TELEGRAM_LIMIT,
    split_message,
    utf16_len,
)
from channels.markup.telegram import split_telegram_html, to_telegram_html

__all__ = [
    "DISCORD_LIMIT",
    "SLACK_LIMIT",
    "TELEGRAM_LIMIT",
    "split_message",
    "split_telegram_html",
    "to_discord",
    "to_slack_mrkdwn",
    "to_telegram_html",
    "utf16_len",
]
