"""Fixtures shared by the tool tests."""

from __future__ import annotations

import pytest

from core.types import ConversationKey, ToolContext


def make_context(chat: str = "42", *, platform: str = "telegram") -> ToolContext:
    """A tool context for a conversation ``platform:chat``."""
    return ToolContext(
        conversation=ConversationKey(platform=platform, chat=chat),
        requester=f"{platform}:1001",
        action_id=f"act-{chat}",
    )


@pytest.fixture
def context() -> ToolContext:
    """The context of conversation ``telegram:42``."""
    return make_context()
