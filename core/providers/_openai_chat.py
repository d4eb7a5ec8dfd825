"""The OpenAI Chat Completions client shared by ``openai``, ``openai_compatible`` and ``mistral``.

The three APIs speak the same JSON; a :class:`Dialect` names where they differ (paths, the
max-tokens field, whether streams must ask for usage, tool-call id rules), and
:class:`ChatCompletionsAPI` does the rest. Providers hold one and delegate to it.

What every dialect shares:

* Tool call arguments travel as JSON *strings*; answers are parsed back into objects (an
  object is accepted too, as Mistral's schema allows either).
* Streams are server-sent events ``data: {chunk}`` ending with ``data: [DONE]``; tool-call
  arguments arrive in fragments keyed by ``index``; usage rides on a late chunk (OpenAI's
  extra chunk with empty ``choices``, Mistral's last chunk). A stream whose server sends no
  usage reports ``Usage()`` zeros rather than failing: many self-hosted servers never do.
* An error mid-stream is a ``data:`` chunk holding an error object instead of choices.
* Error bodies come in several shapes, all understood: OpenAI's ``{"error": {"message",
  "type", "param", "code"}}``, the flat ``{"object": "error", "message", "type", "code"}``
  of Mistral and vLLM, ``{"message": ...}`` and ``{"detail": ...}`` (a string or
  pydantic-style ``[{"loc", "msg"}]``) from Mistral's gateway, or ``{"error": "text"}``.

This module holds :class:`ChatCompletionsAPI` (the HTTP calls, answers and streams read into
``core.types``) and the stream reader; the wire models, request building, error parsing and
tool call id mapping live in ``_openai_chat_wire``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import SSEError
from pydantic import ValidationError

from core.errors import ProviderError
from core.providers._openai_chat_wire import (
    _MODELS,
    Dialect,
    _Chunk,
    _Completion,
    _finish,
    _ModelList,
    _text_of,
    _tool_call,
    chat_body,
    status_error,
    stream_error,
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

__all__ = ["ChatCompletionsAPI", "Dialect"]


def _summary(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]


@dataclass
class _PartialCall:
    id: str | None = None
    name: str | None = None
    fragments: str = ""
    whole: dict[str, Any] | None = None


class _StreamState:
    """Turns chunks into events: text at once, tool calls when their arguments are complete."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.calls: dict[int, _PartialCall] = {}
        self.finish_reason: str | None = None
        self.usage = Usage()
        self.saw_calls = False

    def feed(self, chunk: _Chunk) -> Iterator[StreamEvent]:
        if chunk.usage is not None:
            self.usage = chunk.usage.normalized()
        for choice in chunk.choices[:1]:
            text = _text_of(choice.delta.content)
            if text:
                yield TextDelta(text=text)
            for position, part in enumerate(choice.delta.tool_calls or ()):
                call = self.calls.setdefault(
                    part.index if part.index is not None else position, _PartialCall()
                )
                call.id = call.id or part.id
                call.name = call.name or part.function.name
                if isinstance(part.function.arguments, dict):
                    call.whole = part.function.arguments
                else:
                    call.fragments += part.function.arguments or ""
            if choice.finish_reason:
                self.finish_reason = choice.finish_reason
                yield from self.flush()

    def flush(self) -> Iterator[StreamEvent]:
        for _, call in sorted(self.calls.items()):
            arguments = call.fragments if call.whole is None else call.whole
            tool_call = _tool_call(call.id, call.name, arguments, self.fail)
            self.saw_calls = True
            yield ToolCallEvent(tool_call=tool_call)
        self.calls.clear()

    def fail(self, what: str) -> ProviderError:
        return broken_stream(self.provider, what)


class ChatCompletionsAPI:
    """A ``Provider`` for one Chat Completions API; the ``Dialect`` says which one."""

    def __init__(
        self, options: ProviderOptions, client: httpx.AsyncClient, dialect: Dialect
    ) -> None:
        self._options = options
        self._client = client
        self._dialect = dialect
        self.name = self._name = options.name
        self.type_name = dialect.type_name
        headers = dict(options.headers)
        if options.api_key:
            headers["Authorization"] = f"Bearer {options.api_key}"
        self._headers = headers
        self._json_headers = {**headers, "Content-Type": "application/json"}
        self._chat_url = options.url(dialect.chat_path)
        self._models_url = options.url(dialect.models_path)

    def _body(self, request: ChatRequest, model: str, *, stream: bool) -> bytes:
        return chat_body(request, model=model, dialect=self._dialect, stream=stream)

    def _status_error(self, response: httpx.Response) -> ProviderError:
        return status_error(self._name, response, api_key=self._options.api_key)

    def _stream_error(self, chunk: _Chunk) -> ProviderError:
        return stream_error(self._name, chunk)

    def _malformed(self, what: str) -> ProviderError:
        return malformed(self._name, what)

    async def _send(self, method: str, url: httpx.URL, body: bytes | None = None) -> httpx.Response:
        headers = self._headers if body is None else self._json_headers
        try:
            response = await self._client.request(
                method, url, content=body, headers=headers, timeout=self._options.timeout
            )
        except httpx.HTTPError as exc:
            raise error_for_transport(self._name, exc) from exc
        if response.is_error:
            raise self._status_error(response)
        return response

    async def chat(self, request: ChatRequest) -> ChatResult:
        """One complete answer."""
        model = self._options.model_for(request.model)
        response = await self._send(
            "POST", self._chat_url, self._body(request, model, stream=False)
        )
        try:
            completion = _Completion.model_validate_json(response.content)
        except ValidationError as exc:
            raise malformed(self._name, _summary(exc)) from exc
        if not completion.choices:
            raise malformed(self._name, "no choices")
        choice = completion.choices[0]
        calls = [
            _tool_call(part.id, part.function.name, part.function.arguments, self._malformed)
            for part in choice.message.tool_calls or ()
        ]
        return ChatResult(
            content=_text_of(choice.message.content),
            tool_calls=tuple(calls),
            provider=self._name,
            model=model,
            finish_reason=_finish(choice.finish_reason, has_calls=bool(calls)),
            usage=completion.usage.normalized() if completion.usage else Usage(),
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Text deltas as they arrive, complete tool calls, then ``StreamDone``."""
        model = self._options.model_for(request.model)
        body = self._body(request, model, stream=True)
        state = _StreamState(self._name)
        finished = False
        try:
            async with connect_sse(
                self._client,
                self._chat_url,
                content=body,
                headers=self._json_headers,
                http_timeout=self._options.timeout,
            ) as source:
                if source.response.is_error:
                    await source.response.aread()
                    raise self._status_error(source.response)
                async for event in source.aiter_sse():
                    if event.data == "[DONE]":
                        finished = True
                        break
                    try:
                        chunk = _Chunk.model_validate_json(event.data)
                    except ValidationError as exc:
                        raise broken_stream(
                            self._name, f"a malformed chunk ({_summary(exc)})"
                        ) from exc
                    if chunk.error is not None or chunk.object == "error":
                        raise self._stream_error(chunk)
                    for out in state.feed(chunk):
                        yield out
        except SSEError as exc:  # before httpx.HTTPError: SSEError is a TransportError
            raise broken_stream(self._name, str(exc)) from exc
        except httpx.HTTPError as exc:
            raise error_for_transport(self._name, exc) from exc
        if not finished:
            raise broken_stream(self._name, "it ended before data: [DONE]")
        for out in state.flush():
            yield out
        yield StreamDone(
            provider=self._name,
            model=model,
            finish_reason=_finish(state.finish_reason, has_calls=state.saw_calls),
            usage=state.usage,
        )

    async def list_models(self) -> list[str]:
        """Model ids, in the API's order."""
        response = await self._send("GET", self._models_url)
        try:
            listing = _MODELS.validate_json(response.content)
        except ValidationError as exc:
            raise malformed(self._name, _summary(exc)) from exc
        entries = listing.data if isinstance(listing, _ModelList) else listing
        return [entry.id for entry in entries]

    async def health_check(self) -> HealthStatus:
        """An authenticated model listing, timed; never raises for a provider failure."""
        start = time.perf_counter()
        try:
            await self.list_models()
        except ProviderError as exc:
            return HealthStatus(healthy=False, latency_ms=monotonic_ms(start), error=str(exc))
        return HealthStatus(healthy=True, latency_ms=monotonic_ms(start))

    async def close(self) -> None:
        """Nothing to release: the client belongs to the caller."""
