"""What an Approve / Reject button carries: ``sb:y:<approval id>`` or ``sb:n:<approval id>``.

The same on every platform (Telegram callback data, Discord custom id, Slack action value),
and meaningful after a restart: it names the approval, which lives in the database. Each
adapter checks its platform's length limit on top.
"""

from __future__ import annotations

BUTTON_PREFIX = "sb"


def button_value(approval_id: str, *, approve: bool) -> str:
    """The value of the Approve (``approve=True``) or Reject button of an approval."""
    return f"{BUTTON_PREFIX}:{'y' if approve else 'n'}:{approval_id}"


def parse_button_value(value: str | None) -> tuple[str, bool] | None:
    """(approval id, approve?) of a button of ours, or None."""
    parts = (value or "").split(":", 2)
    if len(parts) != 3 or parts[0] != BUTTON_PREFIX or parts[1] not in ("y", "n") or not parts[2]:
        return None
    return parts[2], parts[1] == "y"
