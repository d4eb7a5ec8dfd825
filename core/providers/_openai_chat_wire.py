"""The Chat Completions wire shared by ``openai``, ``openai_compatible`` and ``mistral``.

What is here, for :mod:`core.providers._openai_chat`: the :class:`Dialect` that names where
the three APIs differ; the private pydantic models of the request, the answer, a stream chunk,
the model list and every known error shape; the request body built from ``core.types``, with
tool call ids mapped to ones the dialect accepts (the same way for a call and its result); and
error bodies, HTTP or in-stream, read into a ``ProviderError``.

Names keep their leading underscore, as they had in ``_openai_chat``: pydantic writes model
names into the validation errors (``_ModelList.data: Field required``) that reach users.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from core.errors import ProviderError, ProviderOverloaded, ProviderRateLimited
from core.providers.base import broken_stream, error_for_status, parse_retry_after
from core.types import ChatMessage, ChatRequest, FinishReason, Role, ToolCall, Usage

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "model_length": "length",  # Mistral: the context window, not max_tokens, ran out
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",  # the legacy functions API
    "content_filter": "content_filter",
    "error": "error",  # Mistral
}
_OVERLOAD_TEXT = re.compile(r"overloaded|capacity exceeded", re.IGNORECASE)
_RATE_TEXT = re.compile(r"rate[ _]limit", re.IGNORECASE)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def new_call_id() -> str:
    """A tool call id for a call the API returned without one."""
    return "call_" + uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Dialect:
    """Where one Chat Completions API differs from the others."""

    type_name: str
    chat_path: str
    models_path: str
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"]
    # OpenAI sends stream usage only when asked; Mistral rejects the field (422).
    ask_stream_usage: bool
    # Mistral documents ``name`` on tool results; OpenAI's schema has no such field.
    tool_result_name: bool = False
    # A foreign id that does not fit is replaced by ``remap_tool_call_id(id, attempt)``.
    tool_call_id_fits: Callable[[str], bool] = lambda tool_call_id: True
    remap_tool_call_id: Callable[[str, int], str] = lambda original, attempt: original


# --- wire format: request (sent with exclude_none) ----------------------------------------


class _Function(BaseModel):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class _Tool(BaseModel):
    type: Literal["function"] = "function"
    function: _Function


class _CallFunction(BaseModel):
    name: str
    arguments: str


class _OutToolCall(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: _CallFunction


class _OutMessage(BaseModel):
    role: str
    content: str | None = None
    tool_calls: list[_OutToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None


class _StreamOptions(BaseModel):
    include_usage: bool = True


class _Request(BaseModel):
    model: str
    messages: list[_OutMessage]
    stream: bool
    tools: list[_Tool] | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stream_options: _StreamOptions | None = None


# --- wire format: answers -----------------------------------------------------------------


class _ContentPart(BaseModel):
    type: str
    text: str | None = None


Content = str | list[_ContentPart] | None


class _InFunction(BaseModel):
    name: str | None = None
    arguments: str | dict[str, Any] | None = None


class _InToolCall(BaseModel):
    index: int | None = None
    id: str | None = None
    function: _InFunction = _InFunction()


class _Message(BaseModel):
    """An answer's ``message``, and a stream chunk's ``delta``."""

    content: Content = None
    tool_calls: list[_InToolCall] | None = None


class _Choice(BaseModel):
    message: _Message
    finish_reason: str | None = None


class _Usage(BaseModel):
    prompt_tokens: int | None = 0
    completion_tokens: int | None = 0

    def normalized(self) -> Usage:
        return Usage(
            input_tokens=self.prompt_tokens or 0, output_tokens=self.completion_tokens or 0
        )


class _Completion(BaseModel):
    choices: list[_Choice]
    usage: _Usage | None = None


class _ErrorInfo(BaseModel):
    message: Any = None
    type: str | None = None
    code: str | int | None = None


class _ErrorBody(BaseModel):
    error: _ErrorInfo | str | None = None
    object: str | None = None
    message: Any = None
    type: str | None = None
    code: str | int | None = None
    detail: Any = None


class _ChunkChoice(BaseModel):
    delta: _Message = _Message()
    finish_reason: str | None = None


class _Chunk(_ErrorBody):
    choices: list[_ChunkChoice] = []
    usage: _Usage | None = None


class _ModelEntry(BaseModel):
    id: str


class _ModelList(BaseModel):
    data: list[_ModelEntry]


# Some compatible servers (Together's API, for one) answer /models with a bare array.
_MODELS: TypeAdapter[_ModelList | list[_ModelEntry]] = TypeAdapter(_ModelList | list[_ModelEntry])


# --- helpers --------------------------------------------------------------------------------


def _text_of(content: Content) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    # Mistral's reasoning models send typed parts; only "text" parts are the answer.
    return "".join(part.text or "" for part in content if part.type == "text")


def _finish(raw: str | None, *, has_calls: bool) -> FinishReason:
    reason = _FINISH.get(raw or "", "stop")
    # Some servers say "stop" while asking for tools; the caller acts on tool_calls.
    return "tool_calls" if has_calls and reason == "stop" else reason


def _tool_call(
    call_id: str | None,
    name: str | None,
    arguments: str | dict[str, Any] | None,
    fail: Callable[[str], ProviderError],
) -> ToolCall:
    """A tool call from its wire parts; arguments come as a JSON string or an object."""
    if not name:
        raise fail("a tool call without a name")
    if isinstance(arguments, str) and arguments.strip():
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError as exc:
            raise fail(f"tool call arguments are not JSON: {exc.msg}") from exc
        if not isinstance(arguments, dict):
            raise fail("tool call arguments are not a JSON object")
    return ToolCall(id=call_id or new_call_id(), name=name, arguments=arguments or {})


def _describe(value: Any) -> str:
    if value is None or isinstance(value, str):
        return value or ""
    if isinstance(value, dict) and "detail" in value:
        return _describe(value["detail"])
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        return "; ".join(
            ".".join(str(p) for p in item.get("loc", ())) + ": " + str(item.get("msg", ""))
            for item in value
        )
    return json.dumps(value)


def _error_fields(body: _ErrorBody) -> tuple[str, str, str]:
    """(message, type, code) of any known error shape, the last two lowercased."""
    if isinstance(body.error, _ErrorInfo):
        info = body.error
        return _describe(info.message), (info.type or "").lower(), str(info.code or "").lower()
    if isinstance(body.error, str):
        return body.error, "", ""
    text = _describe(body.message) or _describe(body.detail)
    return text, (body.type or "").lower(), str(body.code or "").lower()


def _is_overload(*, status: int, text: str, kind: str, code: str) -> bool:
    if code == "server_is_overloaded" or kind == "overloaded_error":
        return True
    return status in (503, 529) and bool(_OVERLOAD_TEXT.search(text))


def _reset_hint(headers: httpx.Headers) -> float | None:
    """Seconds until the exhausted OpenAI limit resets (``x-ratelimit-reset-*: 6m0s``)."""
    for limit in ("requests", "tokens"):
        if headers.get(f"x-ratelimit-remaining-{limit}") == "0":
            value = headers.get(f"x-ratelimit-reset-{limit}", "")
            parts = _DURATION.findall(value)
            if parts:
                return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in parts)
    return None


class _ToolCallIds:
    """Maps history ids onto ids the API accepts, the same way for a call and its result."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._mapped: dict[str, str] = {}
        self._taken: set[str] = set()

    def __call__(self, original: str) -> str:
        mapped = self._mapped.get(original)
        if mapped is not None:
            return mapped
        mapped, attempt = original, 0
        if not self._dialect.tool_call_id_fits(original) or original in self._taken:
            mapped = self._dialect.remap_tool_call_id(original, attempt)
            while mapped in self._taken:  # a clash is ~impossible, but must not merge calls
                attempt += 1
                mapped = self._dialect.remap_tool_call_id(original, attempt)
        self._mapped[original] = mapped
        self._taken.add(mapped)
        return mapped


def _wire_messages(messages: tuple[ChatMessage, ...], dialect: Dialect) -> list[_OutMessage]:
    ids = _ToolCallIds(dialect)
    names: dict[str, str] = {}
    pending: list[ToolCall] = []  # calls of the latest assistant turn not answered yet
    out: list[_OutMessage] = []
    for message in messages:
        if message.role is Role.ASSISTANT and message.tool_calls:
            pending = list(message.tool_calls)
            names.update((call.id, call.name) for call in message.tool_calls)
            calls = [
                _OutToolCall(
                    id=ids(call.id),
                    function=_CallFunction(name=call.name, arguments=json.dumps(call.arguments)),
                )
                for call in message.tool_calls
            ]
            out.append(
                _OutMessage(role="assistant", content=message.content or None, tool_calls=calls)
            )
        elif message.role is Role.TOOL:
            original = message.tool_call_id or next(
                (c.id for c in pending if message.name in (None, c.name)), new_call_id()
            )
            pending = [c for c in pending if c.id != original]
            name = message.name or names.get(original)
            out.append(
                _OutMessage(
                    role="tool",
                    content=message.content,
                    tool_call_id=ids(original),
                    name=name if dialect.tool_result_name else None,
                )
            )
        else:
            out.append(_OutMessage(role=message.role.value, content=message.content))
    return out


def chat_body(request: ChatRequest, *, model: str, dialect: Dialect, stream: bool) -> bytes:
    """The JSON body of a chat completion request for ``request``, in ``dialect``."""
    wire = _Request(
        model=model,
        messages=_wire_messages(request.messages, dialect),
        stream=stream,
        temperature=request.temperature,
        stream_options=_StreamOptions() if stream and dialect.ask_stream_usage else None,
    )
    if request.tools:
        wire.tools = [
            _Tool(
                function=_Function(
                    name=t.name, description=t.description or None, parameters=t.parameters
                )
            )
            for t in request.tools
        ]
    if request.max_tokens is not None:
        setattr(wire, dialect.max_tokens_field, request.max_tokens)
    return wire.model_dump_json(exclude_none=True).encode()


# --- reading an error ---------------------------------------------------------------------


def status_error(provider: str, response: httpx.Response, *, api_key: str | None) -> ProviderError:
    """The error for a non-2xx answer, with ``api_key`` masked wherever it is echoed."""
    status = response.status_code
    try:
        text, kind, code = _error_fields(_ErrorBody.model_validate_json(response.content))
    except ValidationError:
        text, kind, code = response.text, "", ""
    if api_key:
        # OpenAI echoes a wrong key back in its 401 message.
        text = text.replace(api_key, "***")
    retry_after = None
    if status == 429:
        retry_after = parse_retry_after(response.headers) or _reset_hint(response.headers)
    return error_for_status(
        provider=provider,
        status=status,
        detail=text or response.text or response.reason_phrase,
        retry_after=retry_after,
        overloaded=_is_overload(status=status, text=text, kind=kind, code=code),
        context_too_long=True if code == "context_length_exceeded" else None,
    )


def stream_error(provider: str, chunk: _Chunk) -> ProviderError:
    """The error for a ``data:`` chunk holding an error object instead of choices."""
    text, kind, code = _error_fields(chunk)
    message = f"{provider}: {text or 'error event'} (in the stream)"
    if _is_overload(status=503, text=text, kind=kind, code=code):
        return ProviderOverloaded(message, provider=provider)
    if "rate_limit" in code or kind in ("rate_limited", "requests") or _RATE_TEXT.search(text):
        return ProviderRateLimited(message, provider=provider)
    return broken_stream(provider, f"error event: {text or kind or code}")
