"""The types that cross layers: frozen pydantic models, nothing crosses as a raw dict."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Frozen(BaseModel):
    """Base of every cross-layer type: immutable, unknown fields rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class SecurityLevel(enum.StrEnum):
    """How risky an action is; ordered low < medium < high < critical."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Position in the order low (0) .. critical (3)."""
        return _LEVEL_ORDER.index(self)

    def at_most(self, other: SecurityLevel) -> bool:
        """True when this level is the same as or below ``other``."""
        return self.rank <= other.rank


_LEVEL_ORDER = [SecurityLevel.LOW, SecurityLevel.MEDIUM, SecurityLevel.HIGH, SecurityLevel.CRITICAL]


class ActionKind(enum.StrEnum):
    """What an action does."""

    CHAT = "chat"
    TOOL_CALL = "tool_call"
    ADMIN = "admin"


class ActionStatus(enum.StrEnum):
    """Lifecycle of an action."""

    REQUESTED = "requested"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"


class ApprovalStatus(enum.StrEnum):
    """Lifecycle of an approval."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


class ConversationKey(Frozen):
    """Where a conversation lives: platform, chat and optional thread."""

    platform: str
    chat: str
    thread: str | None = None

    def __str__(self) -> str:
        parts = [self.platform, self.chat]
        if self.thread:
            parts.append(self.thread)
        return ":".join(parts)


class Sender(Frozen):
    """Who sent a message; ``identity`` (``platform:user_id``) is what allowlists name."""

    platform: str
    user_id: str
    display_name: str = ""
    is_bot: bool = False

    @property
    def identity(self) -> str:
        """The ``platform:user_id`` form used by allowlists and approvers."""
        return f"{self.platform}:{self.user_id}"


class InboundMessage(Frozen):
    """One platform event, normalized by a channel adapter."""

    platform: str
    message_id: str
    conversation: ConversationKey
    sender: Sender
    text: str
    is_direct: bool = False
    mentions_bot: bool = False
    reply_to_message_id: str | None = None
    received_at: datetime | None = None


class OutboundReply(Frozen):
    """What the orchestrator hands back to a channel adapter for delivery."""

    conversation: ConversationKey
    text: str
    in_reply_to: str | None = None
    action_id: str | None = None


class Role(enum.StrEnum):
    """Roles of the normalized conversation model."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


class ToolCall(Frozen):
    """A model's request to run a tool; ``arguments`` is always an object."""

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ToolSpec(Frozen):
    """A tool offered to the model: name, description and JSON schema of its arguments."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})


class ChatMessage(Frozen):
    """One message of the normalized conversation model shared by every provider."""

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None


class Usage(Frozen):
    """Token counts reported by a provider."""

    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "error"]


class ChatRequest(Frozen):
    """A request to an LLM in the normalized model."""

    messages: tuple[ChatMessage, ...]
    model: str | None = None
    tools: tuple[ToolSpec, ...] = ()
    max_tokens: int | None = None
    temperature: float | None = None


class ChatResult(Frozen):
    """A complete answer; always says which provider and model produced it."""

    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    provider: str
    model: str
    finish_reason: FinishReason = "stop"
    usage: Usage = Usage()


class TextDelta(Frozen):
    """A piece of streamed text."""

    type: Literal["delta"] = "delta"
    text: str


class ToolCallEvent(Frozen):
    """A complete tool call produced during a stream."""

    type: Literal["tool_call"] = "tool_call"
    tool_call: ToolCall


class StreamDone(Frozen):
    """The last event of a successful stream."""

    type: Literal["done"] = "done"
    provider: str
    model: str
    finish_reason: FinishReason = "stop"
    usage: Usage = Usage()


class StreamFailed(Frozen):
    """The last event of a stream that broke after text was sent: never a silent truncation."""

    type: Literal["error"] = "error"
    code: str
    message: str
    provider: str


StreamEvent = TextDelta | ToolCallEvent | StreamDone | StreamFailed


class HealthStatus(Frozen):
    """Result of a provider or channel health probe."""

    healthy: bool
    latency_ms: float | None = None
    error: str | None = None


class ToolContext(Frozen):
    """Who a tool runs for: the conversation, the requester and the action it belongs to."""

    conversation: ConversationKey
    requester: str
    action_id: str


class ScreenVerdict(Frozen):
    """What the prompt-injection screen thinks of a text."""

    verdict: Literal["allow", "flag", "block"]
    score: float = 0.0
    rules: tuple[str, ...] = ()


class Action(Frozen):
    """Something with an effect, persisted with its security level and lifecycle."""

    id: str
    kind: ActionKind
    level: SecurityLevel
    status: ActionStatus
    conversation: ConversationKey | None = None
    requester: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime


class Approval(Frozen):
    """A human decision bound to the SHA-256 of exactly what will run."""

    id: str
    action_id: str
    payload_sha256: str
    status: ApprovalStatus
    level: SecurityLevel
    requested_by: str | None = None
    decided_by: str | None = None
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None = None


class PendingApproval(Frozen):
    """An approval a turn is waiting for: what would run, and until when it may be decided."""

    id: str
    action_id: str
    tool: str
    level: SecurityLevel
    arguments: dict[str, Any] = Field(default_factory=dict)
    expires_at: datetime


TurnStatus = Literal[
    "answered",  # the model answered
    "awaiting_approval",  # a tool call waits for a human; the reply says so
    "command",  # a chat command (/help, /reset ...) answered without the model
    "duplicate",  # this (platform, message id) was handled before: nothing was done
    "ignored",  # a bot's own or another bot's message
    "denied",  # the access policy refused the sender
    "rate_limited",  # the sender's rate limit is exhausted
    "budget_exceeded",  # a token budget or daily request limit is used up
    "blocked",  # the injection screen blocked the message
    "too_long",  # the message is over [assistant] max_message_chars
    "failed",  # no provider could answer; the reply says what to do
]


class TurnResult(Frozen):
    """What one inbound message (or a resumed turn) came to, for the channel to render."""

    status: TurnStatus
    conversation: ConversationKey
    reply: str
    in_reply_to: str | None = None
    provider: str | None = None
    model: str | None = None
    action_id: str | None = None
    pending_approvals: tuple[PendingApproval, ...] = ()
    screen: ScreenVerdict | None = None
    usage: Usage = Usage()
    finish_reason: FinishReason | None = None
    retry_after_s: float | None = None
    # For "awaiting_approval": the model's own words, without the approval lines of
    # ``reply`` (a channel with buttons shows those as buttons instead).
    model_text: str | None = None


OutboundKind = Literal["reply", "approval", "approval_update"]


class OutboundItem(Frozen):
    """One thing a channel must show: a reply, approval buttons, or an approval's outcome.

    ``approval_update`` edits the message that carried an approval's buttons (found by
    ``approval.id``) to show the decision and who made it, without the buttons.
    """

    kind: OutboundKind
    conversation: ConversationKey
    text: str = ""
    # "markdown": the model's text, rendered by the channel; "platform": already rendered
    # (and split) for the platform when it was queued, so each chunk is sent exactly once.
    markup: Literal["markdown", "platform"] = "markdown"
    # A reply that replaces a message already shown (the streamed preview of the answer).
    edit_message_id: str | None = None
    in_reply_to: str | None = None
    action_id: str | None = None
    approval: PendingApproval | None = None
    approval_status: ApprovalStatus | None = None
    decided_by: str | None = None


class DecisionOutcome(Frozen):
    """What a button press came to, for the platform's answer to the presser."""

    ok: bool
    message: str
