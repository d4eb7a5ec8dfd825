"""Anthropic's Messages API on the wire, for :mod:`core.providers.anthropic`.

What is here: the private pydantic models of the request, the answer, the stream events and
the error body; the request body built from ``core.types`` (system hoisted, turns merged so
they alternate, tool results as ``tool_result`` blocks); tool-id mapping
(:func:`wire_tool_id`); and an error body read into a ``ProviderError``. The HTTP calls, the
stream reader and the model listing stay in ``anthropic.py``.

Names keep their leading underscore: nothing outside ``anthropic.py`` should use them.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, RootModel, ValidationError

from core.errors import ProviderBadRequest, ProviderError
from core.providers.base import error_for_status, parse_retry_after
from core.types import ChatMessage, ChatRequest, FinishReason, Role, ToolCall

_TOOL_ID = re.compile(r"[a-zA-Z0-9_-]+")
_NOT_TOOL_ID = re.compile(r"[^a-zA-Z0-9_-]")
# "prompt is too long: 208656 tokens > 200000 maximum", and the older wording for input plus
# max_tokens: "input length and `max_tokens` exceed context limit: 197000 + 8192 > 200000".
_PROMPT_TOO_LONG = re.compile(r"prompt is too long|exceed context limit", re.IGNORECASE)
_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


# --- wire format: request -----------------------------------------------------------------


class _TextBlock(BaseModel):
    type: Literal["text"] = "text"
    text: str


class _ToolUseBlock(BaseModel):
    type: Literal["tool_use"] = "tool_use"
    id: str
    name: str
    input: dict[str, Any]


class _ToolResultBlock(BaseModel):
    type: Literal["tool_result"] = "tool_result"
    tool_use_id: str
    content: str | None = None


_Block = _TextBlock | _ToolUseBlock | _ToolResultBlock


class _Turn(BaseModel):
    role: Literal["user", "assistant"]
    content: list[_Block]


class _Tool(BaseModel):
    name: str
    description: str | None = None
    input_schema: dict[str, Any]


class _MessagesRequest(BaseModel):
    model: str
    max_tokens: int
    messages: list[_Turn]
    system: str | None = None
    tools: list[_Tool] | None = None
    temperature: float | None = None
    stream: bool | None = None


# --- wire format: responses ---------------------------------------------------------------


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Usage(_Answer):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None

    def prompt_tokens(self) -> int | None:
        if self.input_tokens is None:
            return None
        return (
            self.input_tokens
            + (self.cache_creation_input_tokens or 0)
            + (self.cache_read_input_tokens or 0)
        )


class _ContentBlock(_Answer):
    type: str
    text: str | None = None
    id: str | None = None
    name: str | None = None
    input: Any = None


class _Message(_Answer):
    model: str | None = None
    content: list[_ContentBlock] = []
    stop_reason: str | None = None
    usage: _Usage = _Usage()


class _Delta(_Answer):
    type: str | None = None
    text: str | None = None
    partial_json: str | None = None
    stop_reason: str | None = None


class _ErrorDetail(_Answer):
    type: str = "error"
    message: str = ""


class _ErrorBody(_Answer):
    error: _ErrorDetail


class _StreamEvent(_Answer):
    type: str
    message: _Message | None = None
    index: int | None = None
    content_block: _ContentBlock | None = None
    delta: _Delta | None = None
    usage: _Usage | None = None
    error: _ErrorDetail | None = None


class _ToolInput(RootModel[dict[str, Any]]):
    """The assembled ``input_json_delta`` pieces of one tool_use block: an object."""


class _ModelInfo(_Answer):
    id: str


class _ModelPage(_Answer):
    data: list[_ModelInfo]
    has_more: bool = False
    last_id: str | None = None


# --- conversion ---------------------------------------------------------------------------


def wire_tool_id(call_id: str) -> str:
    """The id sent for ``call_id``: itself when Anthropic accepts it, else a stable stand-in.

    The stand-in keeps the readable part and adds a hash of the original, so two foreign ids
    never collapse into one and the same id maps the same way in ``tool_use`` and
    ``tool_result``.
    """
    if _TOOL_ID.fullmatch(call_id):
        return call_id
    digest = hashlib.sha256(call_id.encode()).hexdigest()[:16]
    readable = _NOT_TOOL_ID.sub("_", call_id)[:40]
    return f"{readable}_{digest}" if readable else f"toolu_{digest}"


def _finish(stop_reason: str | None) -> FinishReason:
    # An unknown (newer) stop reason still ended a complete answer.
    return _FINISH.get(stop_reason or "", "stop")


def _tool_call(block_id: str | None, name: str | None, arguments: Any) -> ToolCall:
    if not name or not isinstance(arguments, dict):
        raise ValueError(f"tool_use block {name or '?'} without a name or an input object")
    return ToolCall(id=block_id or f"call_{uuid.uuid4().hex}", name=name, arguments=arguments)


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


# --- building a request -------------------------------------------------------------------


def messages_body(
    request: ChatRequest, *, model: str, default_max_tokens: int, stream: bool, provider: str
) -> bytes:
    """The JSON body of ``POST /v1/messages`` for ``request``."""
    system, turns = _turns(request.messages, provider=provider)
    tools = [
        _Tool(name=t.name, description=t.description or None, input_schema=t.parameters)
        for t in request.tools
    ]
    max_tokens = request.max_tokens
    wire = _MessagesRequest(
        model=model,
        max_tokens=default_max_tokens if max_tokens is None else max_tokens,
        messages=turns,
        system=system,
        tools=tools or None,
        temperature=request.temperature,
        stream=True if stream else None,
    )
    return wire.model_dump_json(exclude_none=True).encode()


def _turns(messages: tuple[ChatMessage, ...], *, provider: str) -> tuple[str | None, list[_Turn]]:
    system: list[str] = []
    turns: list[_Turn] = []
    unanswered: list[ToolCall] = []  # the latest assistant tool calls without a result
    for message in messages:
        role: Literal["user", "assistant"] = "user"
        blocks: list[_Block] = []
        if message.role is Role.SYSTEM:
            if message.content:
                system.append(message.content)
            continue
        if message.role is Role.ASSISTANT:
            role = "assistant"
            if message.content:
                blocks.append(_TextBlock(text=message.content))
            blocks.extend(
                _ToolUseBlock(id=wire_tool_id(c.id), name=c.name, input=c.arguments)
                for c in message.tool_calls
            )
            unanswered = list(message.tool_calls)
        elif message.role is Role.TOOL:
            call_id = _answered_call(message, unanswered, provider=provider)
            blocks.append(
                _ToolResultBlock(tool_use_id=wire_tool_id(call_id), content=message.content or None)
            )
        elif message.content:
            blocks.append(_TextBlock(text=message.content))
        if not blocks:
            continue  # the API rejects empty turns
        if turns and turns[-1].role == role:
            turns[-1].content.extend(blocks)
        else:
            turns.append(_Turn(role=role, content=blocks))
    return ("\n\n".join(system) or None), turns


def _answered_call(message: ChatMessage, unanswered: list[ToolCall], *, provider: str) -> str:
    """The id a tool result answers; without one, the first open call of that name."""
    if message.tool_call_id:
        unanswered[:] = [c for c in unanswered if c.id != message.tool_call_id]
        return message.tool_call_id
    for call in unanswered:
        if message.name in (None, call.name):
            unanswered.remove(call)
            return call.id
    raise ProviderBadRequest(
        f"{provider}: a tool result ({message.name or 'unnamed'}) answers no tool call "
        "of the assistant message before it",
        provider=provider,
    )


# --- reading an error ---------------------------------------------------------------------


def status_error(provider: str, response: httpx.Response) -> ProviderError:
    """The error for a non-2xx answer, from the API's error body when it sent one."""
    kind, detail = "", response.text
    try:
        error = _ErrorBody.model_validate_json(response.content).error
        kind, detail = error.type, error.message or error.type
    except ValidationError:
        pass  # not the API's JSON (a proxy's HTML page ...): pass the text on
    status = response.status_code
    too_long: bool | None = None
    if status == 413 or kind == "request_too_large":
        too_long = True
    elif kind == "invalid_request_error":
        too_long = bool(_PROMPT_TOO_LONG.search(detail))
    return error_for_status(
        provider=provider,
        status=status,
        detail=detail,
        retry_after=parse_retry_after(response.headers),
        overloaded=kind == "overloaded_error",
        context_too_long=too_long,
    )
