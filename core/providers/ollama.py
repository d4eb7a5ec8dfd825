"""The ``ollama`` provider: Ollama's native API (``/api/chat``, ``/api/tags``).

Quirks of this API that shape the code:

* ``base_url`` is the bare origin (``http://127.0.0.1:11434``); a local Ollama takes no key,
  but one behind an authenticating reverse proxy gets ``Authorization: Bearer <api_key>``.
* Streams are NDJSON, one JSON object per line; the last line has ``"done": true`` with
  ``done_reason`` and the token counts. An error after the headers is an ``{"error": ...}``
  line, and a failure before them an ``{"error": ...}`` body with the HTTP status.
* Tool call arguments travel as JSON objects (not strings), in both directions. Most
  versions give tool calls no id, so one is made; a tool result names its tool with
  ``tool_name``.
* Model names carry a tag (``llama3.2:latest``); a name without one means ``:latest``.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, Literal

import httpx
from pydantic import BaseModel, Field, ValidationError

from core.errors import ProviderError, ProviderOverloaded
from core.providers.base import (
    ProviderOptions,
    broken_stream,
    error_for_status,
    error_for_transport,
    malformed,
    monotonic_ms,
    parse_retry_after,
)
from core.types import (
    ChatMessage,
    ChatRequest,
    ChatResult,
    FinishReason,
    HealthStatus,
    Role,
    StreamDone,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    Usage,
)

# Ollama's scheduler answers 503 "server busy, please try again.  maximum pending requests
# exceeded" when its queue (OLLAMA_MAX_QUEUE) is full; proxies in front say "overloaded".
_OVERLOAD_TEXT = re.compile(r"server busy|maximum pending requests|overloaded", re.IGNORECASE)


def new_call_id() -> str:
    """A tool call id for the calls Ollama returns without one."""
    return "call_" + uuid.uuid4().hex


def with_tag(model: str) -> str:
    """``model`` with Ollama's implicit ``:latest`` tag made explicit."""
    # The tag follows the last path segment: "host:5000/name" has a port, not a tag.
    return model if ":" in model.rsplit("/", 1)[-1] else model + ":latest"


# --- wire format: request (sent with exclude_none: unset fields are left out) ----------


class _FunctionSpec(BaseModel):
    name: str
    description: str
    parameters: dict[str, Any]


class _ToolSpec(BaseModel):
    type: Literal["function"] = "function"
    function: _FunctionSpec


class _SentFunction(BaseModel):
    name: str
    arguments: dict[str, Any]


class _SentToolCall(BaseModel):
    id: str | None = None  # newer versions link results by id; older ones ignore it
    function: _SentFunction


class _SentMessage(BaseModel):
    role: str
    content: str
    tool_calls: list[_SentToolCall] | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None


class _Options(BaseModel):
    num_predict: int | None = None
    temperature: float | None = None


class _ChatBody(BaseModel):
    model: str
    messages: list[_SentMessage]
    stream: bool
    tools: list[_ToolSpec] | None = None
    options: _Options | None = None


# --- wire format: response ------------------------------------------------------------


class _ReceivedFunction(BaseModel):
    name: str
    # An object per the API; some model templates yield a JSON string instead.
    arguments: dict[str, Any] | str | None = None


class _ReceivedToolCall(BaseModel):
    id: str | None = None
    function: _ReceivedFunction


class _ReceivedMessage(BaseModel):
    role: str = "assistant"
    content: str | None = None
    tool_calls: list[_ReceivedToolCall] | None = None


class _ChatChunk(BaseModel):
    """The whole answer (``stream: false``) or one NDJSON line of a stream."""

    message: _ReceivedMessage | None = None
    done: bool = False
    done_reason: str | None = None
    # Left out when zero (a fully cached prompt), hence the defaults.
    prompt_eval_count: int = 0
    eval_count: int = 0
    error: str | None = None


class _TagModel(BaseModel):
    name: str


class _Tags(BaseModel):
    models: list[_TagModel] = Field(default_factory=list)


class _ErrorBody(BaseModel):
    error: str


# --- the provider ---------------------------------------------------------------------


def _finish(done_reason: str | None, *, had_tool_calls: bool) -> FinishReason:
    # Ollama documents stop, length, and load/unload for empty requests; it says "stop"
    # after tool calls too.
    if done_reason == "length":
        return "length"
    return "tool_calls" if had_tool_calls else "stop"


class OllamaProvider:
    """Ollama's native chat API, streaming included."""

    type_name = "ollama"

    def __init__(
        self,
        options: ProviderOptions,
        client: httpx.AsyncClient,
        *,
        make_call_id: Callable[[], str] = new_call_id,
    ) -> None:
        self.name = options.name
        self._options = options
        self._client = client
        self._make_call_id = make_call_id
        self._headers = dict(options.headers)
        if options.api_key:
            self._headers["Authorization"] = f"Bearer {options.api_key}"

    def __repr__(self) -> str:
        return f"OllamaProvider(name={self.name!r}, base_url={self._options.base_url!r})"

    # --- requests ---

    def _body(self, request: ChatRequest, model: str, *, stream: bool) -> bytes:
        options = None
        if request.max_tokens is not None or request.temperature is not None:
            options = _Options(num_predict=request.max_tokens, temperature=request.temperature)
        tools = [
            _ToolSpec(
                function=_FunctionSpec(
                    name=t.name, description=t.description, parameters=t.parameters
                )
            )
            for t in request.tools
        ]
        body = _ChatBody(
            model=model,
            messages=list(_messages(request.messages)),
            stream=stream,
            tools=tools or None,
            options=options,
        )
        return body.model_dump_json(exclude_none=True).encode()

    def _post_chat(self, body: bytes) -> httpx.Request:
        return self._client.build_request(
            "POST",
            self._options.url("/api/chat"),
            content=body,
            headers={**self._headers, "Content-Type": "application/json"},
            timeout=self._options.timeout,
        )

    def _error(self, response: httpx.Response, model: str | None = None) -> ProviderError:
        text = response.text
        try:
            detail = _ErrorBody.model_validate_json(text).error
        except ValidationError:
            detail = text
        if response.status_code == 404 and model and "not found" in detail:
            detail = f"{detail}: pull it with `ollama pull {model}`"
        return error_for_status(
            provider=self.name,
            status=response.status_code,
            detail=detail,
            retry_after=parse_retry_after(response.headers),
            overloaded=bool(_OVERLOAD_TEXT.search(detail)) and response.status_code >= 500,
        )

    def _tool_calls(self, message: _ReceivedMessage | None, *, stream: bool) -> list[ToolCall]:
        calls = []
        for call in (message.tool_calls or []) if message else []:
            arguments = call.function.arguments
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments) if arguments.strip() else {}
                except json.JSONDecodeError:
                    arguments = None
            elif arguments is None:
                arguments = {}
            if not isinstance(arguments, dict):
                what = f"arguments of tool call {call.function.name!r} are not a JSON object"
                raise broken_stream(self.name, what) if stream else malformed(self.name, what)
            calls.append(
                ToolCall(
                    id=call.id or self._make_call_id(),
                    name=call.function.name,
                    arguments=arguments,
                )
            )
        return calls

    # --- the Provider protocol ---

    async def chat(self, request: ChatRequest) -> ChatResult:
        """One complete answer (``"stream": false``)."""
        model = self._options.model_for(request.model)
        try:
            response = await self._client.send(
                self._post_chat(self._body(request, model, stream=False))
            )
        except httpx.HTTPError as exc:
            raise error_for_transport(self.name, exc) from exc
        if not response.is_success:
            raise self._error(response, model)
        try:
            answer = _ChatChunk.model_validate_json(response.content)
        except ValidationError as exc:
            raise malformed(self.name, f"not a chat response: {exc.error_count()} errors") from exc
        if answer.message is None:
            raise malformed(self.name, answer.error or "no message")
        calls = self._tool_calls(answer.message, stream=False)
        return ChatResult(
            content=answer.message.content or "",
            tool_calls=tuple(calls),
            provider=self.name,
            model=model,
            finish_reason=_finish(answer.done_reason, had_tool_calls=bool(calls)),
            usage=Usage(input_tokens=answer.prompt_eval_count, output_tokens=answer.eval_count),
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Text as it arrives, each tool call, then ``StreamDone`` from the ``done`` line."""
        model = self._options.model_for(request.model)
        http_request = self._post_chat(self._body(request, model, stream=True))
        had_tool_calls = False
        try:
            response = await self._client.send(http_request, stream=True)
            try:
                if not response.is_success:
                    await response.aread()
                    raise self._error(response, model)
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    chunk = self._parse_line(line)
                    text = chunk.message.content if chunk.message else None
                    if text:
                        yield TextDelta(text=text)
                    for call in self._tool_calls(chunk.message, stream=True):
                        had_tool_calls = True
                        yield ToolCallEvent(tool_call=call)
                    if chunk.done:
                        yield StreamDone(
                            provider=self.name,
                            model=model,
                            finish_reason=_finish(chunk.done_reason, had_tool_calls=had_tool_calls),
                            usage=Usage(
                                input_tokens=chunk.prompt_eval_count,
                                output_tokens=chunk.eval_count,
                            ),
                        )
                        return
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            raise error_for_transport(self.name, exc) from exc
        raise broken_stream(self.name, 'the answer ended without its "done" line')

    def _parse_line(self, line: str) -> _ChatChunk:
        try:
            chunk = _ChatChunk.model_validate_json(line)
        except ValidationError as exc:
            raise broken_stream(self.name, "a line of the answer is not a chat chunk") from exc
        if chunk.error is not None:
            if _OVERLOAD_TEXT.search(chunk.error):
                raise ProviderOverloaded(
                    f"{self.name}: {chunk.error} (in the stream)", provider=self.name
                )
            raise broken_stream(self.name, f"error in the stream: {chunk.error}")
        return chunk

    async def list_models(self) -> list[str]:
        """The names ``/api/tags`` reports, tag included (``llama3.2:latest``)."""
        try:
            response = await self._client.get(
                self._options.url("/api/tags"),
                headers=self._headers,
                timeout=self._options.timeout,
            )
        except httpx.HTTPError as exc:
            raise error_for_transport(self.name, exc) from exc
        if not response.is_success:
            raise self._error(response)
        try:
            tags = _Tags.model_validate_json(response.content)
        except ValidationError as exc:
            raise malformed(self.name, "not a model list") from exc
        return [m.name for m in tags.models]

    async def health_check(self) -> HealthStatus:
        """Lists the models; unhealthy when unreachable or the default model is not pulled."""
        start = time.perf_counter()
        try:
            names = await self.list_models()
        except ProviderError as exc:
            return HealthStatus(healthy=False, latency_ms=monotonic_ms(start), error=str(exc))
        latency = monotonic_ms(start)
        wanted = self._options.default_model
        if wanted and not _has_model(names, wanted):
            return HealthStatus(
                healthy=False,
                latency_ms=latency,
                error=f"{self.name}: default_model {wanted!r} is not pulled on this Ollama: "
                f"run `ollama pull {wanted}`",
            )
        return HealthStatus(healthy=True, latency_ms=latency)

    async def close(self) -> None:
        """Nothing to release: the HTTP client belongs to the caller."""


def _has_model(names: Iterable[str], model: str) -> bool:
    wanted = with_tag(model)
    return any(with_tag(name) == wanted for name in names)


def _messages(history: Iterable[ChatMessage]) -> Iterable[_SentMessage]:
    names_by_call_id: dict[str, str] = {}
    for message in history:
        if message.role is Role.TOOL:
            name = message.name or names_by_call_id.get(message.tool_call_id or "")
            yield _SentMessage(
                role="tool",
                content=message.content,
                tool_name=name,
                tool_call_id=message.tool_call_id,
            )
            continue
        calls = []
        for call in message.tool_calls:
            names_by_call_id[call.id] = call.name
            calls.append(
                _SentToolCall(
                    id=call.id, function=_SentFunction(name=call.name, arguments=call.arguments)
                )
            )
        yield _SentMessage(
            role=message.role.value, content=message.content, tool_calls=calls or None
        )
