"""Anthropic's Messages API (``POST /v1/messages``, ``GET /v1/models``).

Quirks this module absorbs, so the rest of Switchboard never sees them:

* system messages go to the top-level ``system`` field, never into ``messages``;
* ``max_tokens`` is required on every request;
* turns must alternate user / assistant: consecutive same-role messages are merged, and tool
  results travel as ``tool_result`` blocks inside a user turn;
* tool_use ids must match ``^[a-zA-Z0-9_-]+$``: ids made by other providers are mapped
  deterministically, so a ``tool_use`` and its ``tool_result`` keep pointing at each other;
* input usage is ``input_tokens`` plus the prompt-cache reads and writes, which the API
  counts separately (the whole prompt was processed and billed, cached or not);
* a stream can fail after ``200 OK`` with an ``error`` event (``overloaded_error`` ...).

This module holds the provider: the HTTP calls, answers and streams read into ``core.types``,
the model listing. The wire models, request building, error-body parsing and tool-id mapping
live in ``_anthropic_wire``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from httpx_sse import SSEError
from pydantic import ValidationError

from core.errors import ProviderError, ProviderOverloaded, ProviderRateLimited
from core.providers._anthropic_wire import (
    _ErrorDetail,
    _finish,
    _first_error,
    _Message,
    _ModelPage,
    _StreamEvent,
    _tool_call,
    _ToolInput,
    _Usage,
    messages_body,
    status_error,
    wire_tool_id,
)
from core.providers.base import (
    ProviderOptions,
    broken_stream,
    connect_sse,
    error_for_transport,
    malformed,
    monotonic_ms,
)
from core.types import (
    ChatRequest,
    ChatResult,
    HealthStatus,
    StreamDone,
    StreamEvent,
    TextDelta,
    ToolCallEvent,
    Usage,
)

__all__ = ["API_VERSION", "AnthropicProvider", "wire_tool_id"]

API_VERSION = "2023-06-01"
_MODELS_PAGE = 1000  # the largest page GET /v1/models serves


class AnthropicProvider:
    """Claude models through Anthropic's Messages API."""

    type_name = "anthropic"

    def __init__(self, options: ProviderOptions, client: httpx.AsyncClient) -> None:
        self.name = options.name
        self._options = options
        self._client = client
        headers = {"anthropic-version": API_VERSION, "content-type": "application/json"}
        headers.update(options.headers)
        if options.api_key:
            headers["x-api-key"] = options.api_key
        self._headers = headers
        self._messages_url = options.url("/v1/messages")
        self._models_url = options.url("/v1/models")

    # --- requests -------------------------------------------------------------------------

    def _body(self, request: ChatRequest, model: str, *, stream: bool) -> bytes:
        return messages_body(
            request,
            model=model,
            default_max_tokens=self._options.default_max_tokens,
            stream=stream,
            provider=self.name,
        )

    async def _send(
        self, method: str, url: httpx.URL, *, content: bytes | None = None, params: Any = None
    ) -> httpx.Response:
        try:
            response = await self._client.request(
                method,
                url,
                content=content,
                params=params,
                headers=self._headers,
                timeout=self._options.timeout,
            )
        except httpx.HTTPError as exc:
            raise error_for_transport(self.name, exc) from exc
        if not response.is_success:
            raise self._status_error(response)
        return response

    def _status_error(self, response: httpx.Response) -> ProviderError:
        return status_error(self.name, response)

    # --- the Provider protocol ------------------------------------------------------------

    async def chat(self, request: ChatRequest) -> ChatResult:
        """One complete answer from ``POST /v1/messages``."""
        model = self._options.model_for(request.model)
        body = self._body(request, model, stream=False)
        response = await self._send("POST", self._messages_url, content=body)
        try:
            answer = _Message.model_validate_json(response.content)
            calls = tuple(
                _tool_call(b.id, b.name, b.input) for b in answer.content if b.type == "tool_use"
            )
        except ValidationError as exc:
            raise malformed(self.name, _first_error(exc)) from exc
        except ValueError as exc:
            raise malformed(self.name, str(exc)) from exc
        text = "".join(b.text or "" for b in answer.content if b.type == "text")
        usage = Usage(
            input_tokens=answer.usage.prompt_tokens() or 0,
            output_tokens=answer.usage.output_tokens or 0,
        )
        return ChatResult(
            content=text,
            tool_calls=calls,
            provider=self.name,
            model=answer.model or model,
            finish_reason=_finish(answer.stop_reason),
            usage=usage,
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Text and tool calls as they arrive, then ``StreamDone`` on ``message_stop``."""
        model = self._options.model_for(request.model)
        body = self._body(request, model, stream=True)
        reader = _StreamReader(self.name, model)
        try:
            async with connect_sse(
                self._client,
                self._messages_url,
                content=body,
                headers=self._headers,
                http_timeout=self._options.timeout,
            ) as source:
                if not source.response.is_success:
                    await source.response.aread()
                    raise self._status_error(source.response)
                async for sse in source.aiter_sse():
                    event = reader.feed(sse.data)
                    if event is not None:
                        yield event
                    if reader.done is not None:
                        yield reader.done
                        return
        except SSEError as exc:
            raise broken_stream(self.name, str(exc)) from exc
        except httpx.HTTPError as exc:
            raise error_for_transport(self.name, exc) from exc
        raise broken_stream(self.name, "it ended without message_stop")

    async def list_models(self) -> list[str]:
        """Every model id, following the ``after_id`` cursor across pages."""
        ids: list[str] = []
        after: str | None = None
        while True:
            params: dict[str, str | int] = {"limit": _MODELS_PAGE}
            if after is not None:
                params["after_id"] = after
            response = await self._send("GET", self._models_url, params=params)
            try:
                page = _ModelPage.model_validate_json(response.content)
            except ValidationError as exc:
                raise malformed(self.name, _first_error(exc)) from exc
            ids.extend(model.id for model in page.data)
            if not page.has_more:
                return ids
            if not page.last_id or page.last_id == after:
                raise malformed(self.name, "has_more without a new last_id")
            after = page.last_id

    async def health_check(self) -> HealthStatus:
        """A one-model listing: authenticated, free, and never a chat."""
        start = time.perf_counter()
        try:
            await self._send("GET", self._models_url, params={"limit": 1})
        except ProviderError as exc:
            return HealthStatus(healthy=False, latency_ms=monotonic_ms(start), error=str(exc))
        return HealthStatus(healthy=True, latency_ms=monotonic_ms(start))

    async def close(self) -> None:
        """Nothing to release: the HTTP client belongs to the caller."""


_OpenTool = tuple[str | None, str | None, list[str]]


class _StreamReader:
    """Turns the SSE events of one answer into normalized events, one event at a time."""

    def __init__(self, provider: str, model: str) -> None:
        self._provider = provider
        self._model = model
        self._input_tokens = 0
        self._output_tokens = 0
        self._stop_reason: str | None = None
        self._tools: dict[int, _OpenTool] = {}  # by block index: id, name, input pieces
        self.done: StreamDone | None = None

    def feed(self, data: str) -> TextDelta | ToolCallEvent | None:
        """The normalized event for one SSE ``data`` payload, if it makes one."""
        try:
            event = _StreamEvent.model_validate_json(data)
        except ValidationError as exc:
            raise broken_stream(self._provider, f"malformed event: {_first_error(exc)}") from exc
        kind = event.type
        if kind == "content_block_delta" and event.delta is not None:
            if event.delta.type == "text_delta" and event.delta.text:
                return TextDelta(text=event.delta.text)
            if event.delta.type == "input_json_delta" and event.index in self._tools:
                self._tools[event.index][2].append(event.delta.partial_json or "")
        elif kind == "content_block_start" and event.content_block is not None:
            block = event.content_block
            if block.type == "tool_use" and event.index is not None:
                self._tools[event.index] = (block.id, block.name, [])
        elif kind == "content_block_stop" and event.index in self._tools:
            return self._finish_tool(self._tools.pop(event.index))
        elif kind == "message_start" and event.message is not None:
            self._model = event.message.model or self._model
            self._count(event.message.usage)
        elif kind == "message_delta":
            if event.delta is not None and event.delta.stop_reason:
                self._stop_reason = event.delta.stop_reason
            if event.usage is not None:
                self._count(event.usage)
        elif kind == "message_stop":
            self.done = StreamDone(
                provider=self._provider,
                model=self._model,
                finish_reason=_finish(self._stop_reason),
                usage=Usage(input_tokens=self._input_tokens, output_tokens=self._output_tokens),
            )
        elif kind == "error":
            raise self._error(event.error or _ErrorDetail())
        return None  # ping, and event types newer than this module

    def _count(self, usage: _Usage) -> None:
        # message_delta counts are cumulative, so the latest value replaces the earlier one.
        prompt = usage.prompt_tokens()
        if prompt is not None:
            self._input_tokens = prompt
        if usage.output_tokens is not None:
            self._output_tokens = usage.output_tokens

    def _finish_tool(self, tool: _OpenTool) -> ToolCallEvent:
        block_id, name, parts = tool
        raw = "".join(parts) or "{}"
        try:
            call = _tool_call(block_id, name, _ToolInput.model_validate_json(raw).root)
        except (ValidationError, ValueError) as exc:
            what = _first_error(exc) if isinstance(exc, ValidationError) else str(exc)
            raise broken_stream(self._provider, f"tool {name or '?'} input: {what}") from exc
        return ToolCallEvent(tool_call=call)

    def _error(self, error: _ErrorDetail) -> ProviderError:
        message = f"{self._provider}: {error.message or error.type} (in-stream {error.type})"
        if error.type == "overloaded_error":
            return ProviderOverloaded(message, provider=self._provider)
        if error.type == "rate_limit_error":
            return ProviderRateLimited(message, provider=self._provider)
        return broken_stream(self._provider, f"{error.type}: {error.message}")
