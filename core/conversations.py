"""Conversation history: persisted messages, trimmed to a token budget for each request.

Token counts are estimated (about four characters a token, plus a little per message)
rather than counted with one vendor's tokenizer: the same history goes to six APIs with
six tokenizers, and the budget only has to keep the request comfortably inside the
model's context. A provider that still answers "context too long" makes the orchestrator
retry once with half the budget.

Trimming keeps the newest messages and cuts only at a user message, so a request never
starts with a tool result whose call was cut off or with an assistant turn (both of which
some APIs refuse); the current message is always kept.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime

from core.storage.conversation_repo import ConversationRepository, StoredMessage
from core.types import ChatMessage, ConversationKey, Role

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4
# Rows read per request before trimming: far more than any budget keeps in practice.
HISTORY_ROWS = 400


def estimate_tokens(message: ChatMessage) -> int:
    """A conservative estimate of what ``message`` costs in a model's context."""
    chars = len(message.content)
    for call in message.tool_calls:
        chars += len(call.name) + len(json.dumps(call.arguments, ensure_ascii=False))
    return MESSAGE_OVERHEAD_TOKENS + math.ceil(chars / CHARS_PER_TOKEN)


def fit_to_budget(messages: Sequence[ChatMessage], budget: int) -> list[ChatMessage]:
    """The newest messages within ``budget`` tokens, starting at a user message."""
    kept: list[ChatMessage] = []
    used = 0
    for message in reversed(messages):
        cost = estimate_tokens(message)
        if kept and used + cost > budget:
            break
        kept.append(message)
        used += cost
    kept.reverse()
    start = next((i for i, m in enumerate(kept) if m.role is Role.USER), None)
    if start is None:
        # Nothing but tool traffic fits: keep the last message alone rather than nothing.
        return kept[-1:]
    return kept[start:]


class Conversations:
    """The conversation aggregate as the orchestrator uses it."""

    def __init__(self, repo: ConversationRepository) -> None:
        self.repo = repo

    async def append(
        self,
        key: ConversationKey,
        messages: Sequence[ChatMessage],
        *,
        action_id: str | None,
        now: datetime,
    ) -> list[StoredMessage]:
        """Persist messages in order, each with its token estimate."""
        pairs = [(message, estimate_tokens(message)) for message in messages]
        return await self.repo.append(key, pairs, action_id=action_id, now=now)

    async def history(self, key: ConversationKey, *, budget: int) -> list[ChatMessage]:
        """What goes to the model: the newest messages within ``budget`` tokens."""
        stored = await self.repo.recent(key, limit=HISTORY_ROWS)
        return fit_to_budget([s.message for s in stored], budget)

    async def record_tool_result(
        self, key: ConversationKey, *, tool_call_id: str, content: str, now: datetime
    ) -> bool:
        """Replace a placeholder result (``waiting for approval``) with the real one."""
        tokens = estimate_tokens(ChatMessage(role=Role.TOOL, content=content))
        return await self.repo.replace_tool_result(
            key, tool_call_id=tool_call_id, content=content, tokens=tokens, now=now
        )
