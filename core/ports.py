"""What a layer needs from another, as Protocols; implementations do not inherit."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from core.types import (
    Approval,
    ChatRequest,
    ChatResult,
    ConversationKey,
    DecisionOutcome,
    HealthStatus,
    InboundMessage,
    OutboundItem,
    OutboundReply,
    SecurityLevel,
    StreamEvent,
    ToolContext,
    TurnResult,
)


@runtime_checkable
class Provider(Protocol):
    """One LLM API behind the normalized conversation model."""

    name: str
    type_name: str

    async def chat(self, request: ChatRequest) -> ChatResult:
        """Answer a request completely."""
        ...

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Answer a request as a stream of normalized events, ending with ``StreamDone``."""
        ...

    async def list_models(self) -> list[str]:
        """Model ids this provider serves."""
        ...

    async def health_check(self) -> HealthStatus:
        """A cheap authenticated probe; never a paid chat call."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


InboundHandler = Callable[[InboundMessage], Awaitable[None]]


@runtime_checkable
class Channel(Protocol):
    """A platform adapter: normalizes events in, renders replies out."""

    name: str

    async def start(self, handler: InboundHandler) -> None:
        """Connect and feed every normalized message to ``handler``."""
        ...

    async def stop(self) -> None:
        """Disconnect cleanly."""
        ...

    async def send(self, reply: OutboundReply) -> str:
        """Deliver a reply; returns the platform's message id."""
        ...

    async def edit(self, *, platform_message_id: str, reply: OutboundReply) -> None:
        """Replace the text of a message sent before."""
        ...

    async def ask_approval(self, *, approval_id: str, reply: OutboundReply) -> str:
        """Post Approve / Reject buttons for an approval; returns the message id."""
        ...

    def status(self) -> Mapping[str, Any]:
        """Connection state for ``/api/channels`` and ``/readyz``."""
        ...


@runtime_checkable
class Tool(Protocol):
    """Something the model may call: name, JSON schema of its arguments, level, run."""

    name: str
    description: str
    parameters: Mapping[str, Any]
    level: SecurityLevel

    async def run(self, arguments: Mapping[str, Any], *, context: ToolContext) -> str:
        """Execute with validated arguments; the text goes back to the model.

        Raises ``ToolError`` with a message the model (and the user) can act on.
        """
        ...


class SecretStore(Protocol):
    """Read access to named secrets (the vault), for resolving ``vault:NAME`` references."""

    async def get(self, name: str) -> str:
        """The clear value of a secret; raises ``SecretNotFound``."""
        ...


class AuditSink(Protocol):
    """Where every step is recorded (``core.security.audit.AuditLog``)."""

    async def append(
        self,
        kind: str,
        *,
        actor: str | None = None,
        conversation: str | None = None,
        action_id: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> Any:
        """Append one record."""
        ...


@dataclass(frozen=True, slots=True)
class Note:
    """One note the ``remember`` tool keeps; ``conversation`` is ``str(ConversationKey)``."""

    id: int
    conversation: str
    text: str
    created_at: datetime


class NotesStore(Protocol):
    """Notes per conversation, for the ``remember`` and ``recall`` tools."""

    async def add(self, *, conversation: str, text: str, created_at: datetime) -> Note:
        """Keep a note; the oldest notes of the conversation beyond its cap are dropped."""
        ...

    async def search(
        self, *, conversation: str, query: str | None = None, limit: int = 10
    ) -> list[Note]:
        """Newest first; with ``query``, only notes containing every word of it (any case)."""
        ...


class ReplySink(Protocol):
    """Where a turn that finishes later (after an approval) is delivered: a channel's glue."""

    async def deliver(self, result: TurnResult, *, answers: InboundMessage | None = None) -> None:
        """Send the reply, and ask for any approvals it lists, in the result's conversation.

        ``answers``: the inbound message this answers, still "accepted" (a recovered one);
        a sink with a durable queue marks it handled in the same step as it queues the
        reply, and queues nothing if it was handled already. Others may ignore it.
        """
        ...

    async def approval_closed(self, approval: Approval, conversation: ConversationKey) -> None:
        """An approval asked in ``conversation`` was decided or expired: show the outcome."""
        ...


class OutboundSender(Protocol):
    """A channel's way of showing an outbound item on its platform."""

    async def deliver(self, item: OutboundItem, *, edit_message_id: str | None) -> str:
        """Send (or, with ``edit_message_id``, edit) and return the platform's message id.

        Raises ``DeliveryRetry`` (rate limit, outage) or ``DeliveryRefused`` (for good).
        """
        ...


class ChannelHost(Protocol):
    """What a channel adapter hands its events to (the gateway's channel host)."""

    async def receive(self, message: InboundMessage) -> None:
        """Keep a normalized message durably; returns once it is safe to acknowledge."""
        ...

    async def decide(self, *, approval_id: str, approve: bool, decider: str) -> DecisionOutcome:
        """Record a button press as a decision; the outcome says what to tell the presser."""
        ...
