"""Outbound items as Discord messages: markdown chunks, approval buttons, the /ask command.

Answers are Markdown from the model, rendered to Discord's dialect (``channels.markup``) and
split at 2,000 characters. Every message goes out with ``allowed_mentions`` parsing nothing,
so a quoted ``@everyone`` or ``<@id>`` never pings anybody (only the replied-to user is
notified of the answer). An approval is one message with an action row of two buttons whose
``custom_id`` is ``sb:y:<approval id>`` / ``sb:n:<approval id>``: it names the approval, which
lives in the database, so a press is understood after a restart too (presses are handled by
``custom_id``, never by an in-memory ``View``). When the approval is decided or expires, that
message is edited to say so and who decided, and its buttons are removed.
"""

from __future__ import annotations

import json
from typing import Any

import discord

from channels.approval_buttons import button_value, parse_button_value
from channels.markup import DISCORD_LIMIT, split_message, to_discord
from channels.markup.discord import escape_discord
from core.types import ApprovalStatus, OutboundItem, PendingApproval

CUSTOM_ID_LIMIT = 100
_ARGUMENTS_MAX_CHARS = 1500

# parse [] : no @everyone/@here, no user or role pings from anything the bot quotes.
ALLOWED_MENTIONS = discord.AllowedMentions(
    everyone=False, users=False, roles=False, replied_user=True
)

ASK_COMMAND_SPEC: dict[str, Any] = {
    "name": "ask",
    "type": 1,  # CHAT_INPUT: a slash command
    "description": "Ask the assistant",
    "options": [
        {
            "type": 3,  # STRING
            "name": "question",
            "description": "What do you want to know?",
            "required": True,
            "max_length": 4000,
        }
    ],
    "contexts": [0, 1],  # guild channels and DMs with the bot
    "integration_types": [0],  # installed to a guild
}


def custom_id(approval_id: str, *, approve: bool) -> str:
    """What a button sends back when pressed."""
    value = button_value(approval_id, approve=approve)
    if len(value) > CUSTOM_ID_LIMIT:
        raise ValueError(f"custom_id {value!r} is over Discord's {CUSTOM_ID_LIMIT} characters")
    return value


def parse_custom_id(value: str | None) -> tuple[str, bool] | None:
    """(approval id, approve?) of a button of ours, or None."""
    return parse_button_value(value)


def reply_chunks(markdown: str) -> list[str]:
    """An answer as one or more Discord messages, each within the 2,000 characters."""
    return split_message(to_discord(markdown), limit=DISCORD_LIMIT)


def _fence_safe(code: str) -> str:
    return code.replace("```", "``\u200b`")


def _request_lines(approval: PendingApproval) -> list[str]:
    arguments = json.dumps(approval.arguments, ensure_ascii=False, indent=1)
    if len(arguments) > _ARGUMENTS_MAX_CHARS:
        arguments = arguments[:_ARGUMENTS_MAX_CHARS] + " ..."
    return [
        f"**{escape_discord(approval.tool, line_start=False)}** ({approval.level.value})",
        f"```json\n{_fence_safe(arguments)}\n```",
    ]


def _who(identity: str | None) -> str:
    if identity is None:
        return "an approver"
    platform, _, user_id = identity.partition(":")
    if platform == "discord" and user_id.isdigit():
        return f"<@{user_id}> (`{identity}`)"  # shows the name; allowed_mentions: no ping
    return f"`{identity}`"


def approval_content(item: OutboundItem) -> str:
    """The text of the message asking for a decision."""
    approval = _approval_of(item)
    expires = int(approval.expires_at.timestamp())
    lines = [
        "**Approval needed**",
        *_request_lines(approval),
        f"Only an approver can decide. Expires <t:{expires}:t> (<t:{expires}:R>). "
        f"Id `{approval.id}`.",
    ]
    return "\n".join(lines)[:DISCORD_LIMIT]


def approval_view(item: OutboundItem) -> discord.ui.View:
    """The action row with Approve / Reject, ready to be serialized into the message."""
    approval = _approval_of(item)
    view = discord.ui.View(timeout=None)
    for label, style, approve in (
        ("Approve", discord.ButtonStyle.success, True),
        ("Reject", discord.ButtonStyle.danger, False),
    ):
        view.add_item(
            discord.ui.Button(
                label=label, style=style, custom_id=custom_id(approval.id, approve=approve)
            )
        )
    # Stopped before it is sent, so discord.py does not keep it in its view store: presses
    # are decided by custom_id in on_interaction, which works the same after a restart.
    view.stop()
    return view


def outcome_content(item: OutboundItem) -> str:
    """The approval message after the decision: what was decided and by whom."""
    approval = _approval_of(item)
    if item.approval_status is ApprovalStatus.APPROVED:
        head = f"✅ **Approved** by {_who(item.decided_by)}"
    elif item.approval_status is ApprovalStatus.EXPIRED:
        head = "⌛ **Expired**: nobody decided in time; nothing ran"
    else:
        head = f"❌ **Rejected** by {_who(item.decided_by)}; nothing ran"
    return "\n".join([head, *_request_lines(approval)])[:DISCORD_LIMIT]


def _approval_of(item: OutboundItem) -> PendingApproval:
    if item.approval is None:
        raise ValueError(f"an {item.kind} item needs its approval")
    return item.approval
