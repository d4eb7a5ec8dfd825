"""Outbound items as Telegram messages: HTML text in chunks, and approval buttons.

Answers are Markdown from the model, rendered to Telegram's HTML (``channels.markup``)
and split at 4,096 characters with balanced tags. An approval is one message with an
inline keyboard; its callback data is ``sb:y:<approval id>`` / ``sb:n:<approval id>``, well
inside Telegram's 64 bytes and meaningful after a restart (it names the approval, which
lives in the database). When the approval is decided or expires, that message is edited
to say so and who decided, and its buttons are removed.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from channels.approval_buttons import button_value, parse_button_value
from channels.markup import TELEGRAM_LIMIT, split_telegram_html, to_telegram_html
from core.types import ApprovalStatus, OutboundItem, PendingApproval

_ARGUMENTS_MAX_CHARS = 1500


@dataclass(frozen=True, slots=True)
class TelegramText:
    """One message to send: HTML text, and the buttons under it (if any)."""

    html: str
    keyboard: InlineKeyboardMarkup | None = None


def callback_data(approval_id: str, *, approve: bool) -> str:
    """What a button sends back when pressed."""
    data = button_value(approval_id, approve=approve)
    if len(data.encode()) > 64:
        raise ValueError(f"callback data {data!r} is over Telegram's 64 bytes")
    return data


def parse_callback(data: str | None) -> tuple[str, bool] | None:
    """(approval id, approve?) of a button press of ours, or None."""
    return parse_button_value(data)


def _request_lines(approval: PendingApproval) -> list[str]:
    arguments = json.dumps(approval.arguments, ensure_ascii=False, indent=1)
    if len(arguments) > _ARGUMENTS_MAX_CHARS:
        arguments = arguments[:_ARGUMENTS_MAX_CHARS] + " ..."
    return [
        f"<b>{html.escape(approval.tool)}</b> ({approval.level.value})",
        f"<pre>{html.escape(arguments)}</pre>",
    ]


def approval_message(item: OutboundItem) -> TelegramText:
    """The message asking for a decision, with Approve / Reject buttons."""
    if item.approval is None:
        raise ValueError("an approval item needs its approval")
    approval = item.approval
    expires = approval.expires_at.strftime("%H:%M UTC")
    lines = [
        "<b>Approval needed</b>",
        *_request_lines(approval),
        f"Only an approver can decide. Expires at {expires}. Id <code>{approval.id}</code>.",
    ]
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text="Approve", callback_data=callback_data(approval.id, approve=True)
                ),
                InlineKeyboardButton(
                    text="Reject", callback_data=callback_data(approval.id, approve=False)
                ),
            ]
        ]
    )
    return TelegramText("\n".join(lines), keyboard)


def outcome_message(item: OutboundItem) -> TelegramText:
    """The approval message after the decision: what was decided and by whom, no buttons."""
    if item.approval is None:
        raise ValueError("an approval update needs its approval")
    who = html.escape(item.decided_by or "an approver")
    if item.approval_status is ApprovalStatus.APPROVED:
        head = f"✅ <b>Approved</b> by {who}"
    elif item.approval_status is ApprovalStatus.EXPIRED:
        head = "⌛ <b>Expired</b>: nobody decided in time; nothing ran"
    else:
        head = f"❌ <b>Rejected</b> by {who}; nothing ran"
    return TelegramText("\n".join([head, *_request_lines(item.approval)]))


def reply_messages(markdown: str) -> list[TelegramText]:
    """An answer as one or more HTML messages, each within Telegram's limit."""
    rendered = to_telegram_html(markdown)
    return [TelegramText(chunk) for chunk in split_telegram_html(rendered, limit=TELEGRAM_LIMIT)]
