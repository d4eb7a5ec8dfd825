"""Outbound items as Slack messages: mrkdwn text in chunks, and Block Kit approval buttons.

Answers are Markdown from the model, rendered to mrkdwn (``channels.markup``) and split at
``SLACK_LIMIT`` characters, each chunk one message. An approval is one Block Kit message: a
section with the request, and an actions block with "Approve" (style primary) and
"Reject" (style danger) buttons whose ``value`` (and ``action_id``) is ``sb:y:<approval id>``
/ ``sb:n:<approval id>``, meaningful after a restart (it names the approval, which lives in
the database). When the approval is decided or expires, that message is replaced by the
outcome and who decided, without the actions block.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from channels.approval_buttons import button_value, parse_button_value
from channels.markup import SLACK_LIMIT, split_message, to_slack_mrkdwn
from channels.markup.slack import escape_mrkdwn
from core.types import ApprovalStatus, OutboundItem, PendingApproval

ACTIONS_BLOCK_ID = "sb_decision"
_ARGUMENTS_MAX_CHARS = 1500
_VALUE_MAX_CHARS = 2000  # Slack's limit for a button's value


@dataclass(frozen=True, slots=True)
class SlackText:
    """One message to send: mrkdwn ``text`` (the notification fallback when there are
    blocks) and the Block Kit ``blocks``, if any."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)


def action_value(approval_id: str, *, approve: bool) -> str:
    """What a button sends back when pressed (its ``value`` and ``action_id``)."""
    value = button_value(approval_id, approve=approve)
    if len(value) > _VALUE_MAX_CHARS:
        raise ValueError(f"button value {value!r} is over Slack's {_VALUE_MAX_CHARS} characters")
    return value


def parse_action(value: str | None) -> tuple[str, bool] | None:
    """(approval id, approve?) of a button press of ours, or None."""
    return parse_button_value(value)


def _request_lines(approval: PendingApproval) -> list[str]:
    arguments = json.dumps(approval.arguments, ensure_ascii=False, indent=1)
    if len(arguments) > _ARGUMENTS_MAX_CHARS:
        arguments = arguments[:_ARGUMENTS_MAX_CHARS] + " ..."
    fenced = escape_mrkdwn(arguments.replace("```", "``\u200b`"))  # keep the block closed
    return [f"*{escape_mrkdwn(approval.tool)}* ({approval.level.value})", f"```\n{fenced}\n```"]


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:SLACK_LIMIT]}}


def _button(label: str, value: str, style: str) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "action_id": value,
        "value": value,
        "style": style,
    }


def approval_message(item: OutboundItem) -> SlackText:
    """The message asking for a decision, with Approve / Reject buttons."""
    if item.approval is None:
        raise ValueError("an approval item needs its approval")
    approval = item.approval
    expires = approval.expires_at.strftime("%H:%M UTC")
    lines = [
        "*Approval needed*",
        *_request_lines(approval),
        f"Only an approver can decide. Expires at {expires}. Id `{approval.id}`.",
    ]
    actions = {
        "type": "actions",
        "block_id": ACTIONS_BLOCK_ID,
        "elements": [
            _button("Approve", action_value(approval.id, approve=True), "primary"),
            _button("Reject", action_value(approval.id, approve=False), "danger"),
        ],
    }
    return SlackText(
        text=f"Approval needed: {escape_mrkdwn(approval.tool)}",
        blocks=[_section("\n".join(lines)), actions],
    )


def outcome_message(item: OutboundItem) -> SlackText:
    """The approval message after the decision: what was decided and by whom, no buttons."""
    if item.approval is None:
        raise ValueError("an approval update needs its approval")
    who = escape_mrkdwn(item.decided_by or "an approver")
    if item.approval_status is ApprovalStatus.APPROVED:
        head = f":white_check_mark: *Approved* by {who}"
    elif item.approval_status is ApprovalStatus.EXPIRED:
        head = ":hourglass: *Expired*: nobody decided in time; nothing ran"
    else:
        head = f":x: *Rejected* by {who}; nothing ran"
    section = "\n".join([head, *_request_lines(item.approval)])
    plain = head.split(" ", 1)[1].replace("*", "")
    return SlackText(text=plain, blocks=[_section(section)])


def reply_messages(markdown: str) -> list[SlackText]:
    """An answer as one or more mrkdwn messages, each within ``SLACK_LIMIT`` characters."""
    chunks = split_message(to_slack_mrkdwn(markdown), limit=SLACK_LIMIT)
    return [SlackText(chunk) for chunk in chunks]
