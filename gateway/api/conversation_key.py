"""The ``platform:chat[:thread]`` text of a conversation key, as URLs and filters carry it.

``str(ConversationKey)`` writes this form; ``parse_conversation_key`` reads it back. The
thread is everything after the second ``:`` (Slack thread ids have dots, others may have
colons), so only the platform and the chat must be free of ``:``. In a URL path the
``:`` may be sent as is or as ``%3A``.
"""

from __future__ import annotations

import re

from core.errors import SwitchboardError
from core.types import ConversationKey

MAX_KEY_CHARS = 512  # the width of conversations.key
KEY_PATTERN = r"^[^:\x00-\x1f\x7f]+:[^:\x00-\x1f\x7f]+(:[^\x00-\x1f\x7f]+)?$"
KEY_EXAMPLES = ["telegram:123456", "slack:C0123ABC:1700000000.000100", "api:alice"]
_KEY = re.compile(KEY_PATTERN)


class InvalidConversationKey(SwitchboardError):
    """The text is not ``platform:chat[:thread]``."""

    code = "invalid_conversation_key"
    http_status = 422


def parse_conversation_key(text: str, *, field: str = "key") -> ConversationKey:
    """The key ``text`` names; raises ``InvalidConversationKey`` saying what is wrong."""
    if len(text) > MAX_KEY_CHARS:
        raise InvalidConversationKey(f"{field}: at most {MAX_KEY_CHARS} characters")
    if _KEY.fullmatch(text) is None:
        raise InvalidConversationKey(
            f"{field}: expected platform:chat or platform:chat:thread (e.g. telegram:123456), "
            f"got {text[:80]!r}"
        )
    platform, chat, thread = (text.split(":", 2) + [""])[:3]
    return ConversationKey(platform=platform, chat=chat, thread=thread or None)
