"""The scripting model every LLM fake shares.

A test pushes steps (a reply, a failure, a cut stream ...) onto a :class:`Script`; the fake
of each API renders each step in that API's own wire format, and records every request it
received both raw and in a normalized view, so one contract suite can check every provider.
With no step queued, a fake answers ``fake[<model>]: <last user text>``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class FakeToolCall:
    """A tool call the fake model makes.

    When ``id`` is None, the fake generates one, or leaves it out where the real API gives none.
    """

    name: str
    arguments: dict[str, Any]
    id: str | None = None


@dataclass(frozen=True)
class Reply:
    """A successful answer. ``finish`` defaults to tool_calls when there are tool calls."""

    text: str = ""
    tool_calls: tuple[FakeToolCall, ...] = ()
    finish: Literal["stop", "length", "tool_calls"] | None = None
    input_tokens: int = 11
    output_tokens: int = 7
    delay_s: float = 0.0  # before the response starts (headers included)
    chunk_delay_s: float = 0.0  # between stream chunks

    @property
    def finish_reason(self) -> str:
        """The normalized finish reason the provider must report."""
        return self.finish or ("tool_calls" if self.tool_calls else "stop")


@dataclass(frozen=True)
class Fail:
    """An HTTP error in the API's own error shape.

    ``kind`` selects an API-specific error: ``"context"`` (context too long),
    ``"overloaded"`` (Anthropic 529 overloaded_error, Gemini 503 UNAVAILABLE ...), or None
    for the usual error of that status. ``raw_body`` replaces the body entirely.
    """

    status: int
    message: str = "fake failure"
    retry_after: float | None = None
    kind: Literal["context", "overloaded"] | None = None
    raw_body: str | None = None


@dataclass(frozen=True)
class CutStream:
    """A stream that sends ``after_chunks`` text chunks of ``reply`` then closes, no end event."""

    reply: Reply = Reply(text="this answer will be cut off before it ends")
    after_chunks: int = 1


@dataclass(frozen=True)
class StreamError:
    """A stream that sends ``after_chunks`` chunks, then the API's in-stream error event."""

    reply: Reply = Reply(text="this answer will end in an error event")
    after_chunks: int = 1
    message: str = "fake in-stream failure"
    kind: Literal["overloaded"] | None = None


@dataclass(frozen=True)
class Malformed:
    """A 200 whose body (or, for a stream, whose ``after_chunks``-th chunk) is not JSON."""

    after_chunks: int = 0


Step = Reply | Fail | CutStream | StreamError | Malformed


@dataclass
class RecordedRequest:
    """One request the fake received, raw and normalized.

    ``messages`` is the conversation as (role, text) pairs with roles system / user /
    assistant / tool; a tool result's text is ``"<tool_call_id or name>=<content>"`` and an
    assistant tool call contributes ``"call <name>(<json arguments>)"``.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    model: str | None = None
    stream: bool = False
    messages: list[tuple[str, str]] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)
    max_tokens: int | None = None


@dataclass
class Script:
    """What a fake will answer, and what it was asked."""

    api_key: str | None = "test-key"  # None: a keyless server (openai_compatible)
    models: list[str] = field(default_factory=lambda: ["fake-small", "fake-large"])
    steps: deque[Step] = field(default_factory=deque)
    requests: list[RecordedRequest] = field(default_factory=list)
    # How long the default (echo-like) reply takes to start.
    default_delay_s: float = 0.0

    def push(self, *steps: Step) -> None:
        """Queue steps; each chat request takes the next one."""
        self.steps.extend(steps)

    def next_step(self, request: RecordedRequest) -> Step:
        """The queued step, or the default echo-like reply."""
        if self.steps:
            return self.steps.popleft()
        last_user = next((text for role, text in reversed(request.messages) if role == "user"), "")
        return Reply(text=f"fake[{request.model}]: {last_user}", delay_s=self.default_delay_s)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """The requests that asked for a completion (not model listings)."""
        return [r for r in self.requests if r.model is not None]


def split_text(text: str, pieces: int = 3) -> list[str]:
    """``text`` in about ``pieces`` chunks (at least one, never empty ones) for streaming."""
    if not text:
        return []
    size = max(1, -(-len(text) // pieces))
    return [text[i : i + size] for i in range(0, len(text), size)]
