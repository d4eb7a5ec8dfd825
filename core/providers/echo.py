"""The built-in ``echo`` provider: answers with the user's own text, marked as echo.

It needs no network and no account, so a fresh install answers before any real LLM is
configured, and tests have a provider with exactly known output.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from core.types import (
    ChatRequest,
    ChatResult,
    HealthStatus,
    Role,
    StreamDone,
    StreamEvent,
    TextDelta,
    Usage,
)

ECHO_MODEL = "echo"
ECHO_PREFIX = "echo: "
_WORDS = re.compile(r"\S+\s*|\s+")


def _last_user_text(request: ChatRequest) -> str:
    for message in reversed(request.messages):
        if message.role is Role.USER:
            return message.content
    return ""


def _count_tokens(text: str) -> int:
    return len(text.split())


class EchoProvider:
    """Repeats the last user message, prefixed with ``echo: ``."""

    type_name = "echo"

    def __init__(self, *, name: str = "echo") -> None:
        self.name = name

    def _answer(self, request: ChatRequest) -> tuple[str, Usage]:
        text = ECHO_PREFIX + _last_user_text(request)
        prompt = sum(_count_tokens(m.content) for m in request.messages)
        return text, Usage(input_tokens=prompt, output_tokens=_count_tokens(text))

    async def chat(self, request: ChatRequest) -> ChatResult:
        """The echoed text as one answer."""
        text, usage = self._answer(request)
        return ChatResult(
            content=text, provider=self.name, model=request.model or ECHO_MODEL, usage=usage
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """The echoed text word by word, then ``StreamDone`` with usage."""
        text, usage = self._answer(request)
        for piece in _WORDS.findall(text):
            yield TextDelta(text=piece)
        yield StreamDone(provider=self.name, model=request.model or ECHO_MODEL, usage=usage)

    async def list_models(self) -> list[str]:
        """The one model, ``echo``."""
        return [ECHO_MODEL]

    async def health_check(self) -> HealthStatus:
        """Always healthy: nothing to reach."""
        return HealthStatus(healthy=True, latency_ms=0.0)

    async def close(self) -> None:
        """Nothing to release."""
