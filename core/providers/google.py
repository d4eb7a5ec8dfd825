"""Google Gemini through the Generative Language API (``v1beta``), without the vendor SDK.

Quirks handled here (the rest of the code sees only ``core.types``):

* Roles are ``user`` and ``model``; system messages become the top-level
  ``systemInstruction``; tool results are ``functionResponse`` parts of a *user* content,
  whose ``name`` is required and whose ``response`` must be an object.
* Tool schemas go through :func:`gemini_schema`: ``parameters`` takes only a subset of
  OpenAPI 3.0, and the API answers 400 to any key outside it.
* Gemini 3 answers 400 when a replayed ``functionCall`` part lacks the ``thoughtSignature``
  it came with. Signatures are remembered per tool call id (bounded); a call this provider
  did not make (a fallback from another API) gets the documented placeholder instead.
* An invalid key is a 400 with reason ``API_KEY_INVALID``, not a 401; the retry hint of a
  429 is the ``RetryInfo`` detail of the error body.

This module holds the provider: the HTTP calls, answers and streams read into ``core.types``,
the remembered signatures, the model listing. The wire models, :func:`gemini_schema`, request
building and error parsing live in ``_google_wire``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import httpx
from httpx_sse import EventSource, SSEError
from pydantic import ValidationError

from core.errors import ProviderError
from core.providers._google_wire import (
    PLACEHOLDER_SIGNATURE,
    _ErrorBody,
    _finish,
    _FunctionCall,
    _GenerateResponse,
    _ModelPage,
    _usage,
    gemini_schema,
    generate_body,
    status_error,
    stream_error,
)
from core.providers.base import (
    ProviderOptions,
    broken_stream,
    error_for_transport,
    malformed,
    monotonic_ms,
)
from core.types import (
    ChatRequest,
    ChatResult,
    FinishReason,
    HealthStatus,
    StreamDone,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    Usage,
)

__all__ = ["API_VERSION", "PLACEHOLDER_SIGNATURE", "GoogleProvider", "gemini_schema"]

API_VERSION = "v1beta"
_SIGNATURES_KEPT = 4096
_PAGE_SIZE = 1000  # the API's maximum
_MAX_PAGES = 100
# How a parse failure is reported: ``malformed`` in an answer, ``broken_stream`` in a stream.
_Fail = Callable[[str, str], ProviderError]


class _StreamState:
    """What a stream has seen so far: its finish reason (when it had one) and usage."""

    def __init__(self) -> None:
        self.finish: FinishReason | None = None
        self.usage = Usage()
        self.has_calls = False


class GoogleProvider:
    """Gemini models through ``generateContent`` / ``streamGenerateContent``."""

    type_name = "google"

    def __init__(self, options: ProviderOptions, client: httpx.AsyncClient) -> None:
        self.name = options.name
        self._options = options
        self._client = client
        self._headers = {**options.headers, "content-type": "application/json"}
        if options.api_key:
            # Never ``?key=`` in the URL: URLs end up in logs and error messages.
            self._headers["x-goog-api-key"] = options.api_key
        self._signatures: OrderedDict[str, str] = OrderedDict()

    # --- requests -------------------------------------------------------------------

    def _model(self, request: ChatRequest) -> str:
        return self._options.model_for(request.model).removeprefix("models/")

    def _url(self, model: str, method: str, query: str = "") -> httpx.URL:
        return self._options.url(f"/{API_VERSION}/models/{quote(model, safe='')}:{method}{query}")

    def _body(self, request: ChatRequest) -> bytes:
        return generate_body(request, signatures=self._signatures, provider=self.name)

    async def _call(self, method: str, url: httpx.URL, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._client.request(
                method, url, headers=self._headers, timeout=self._options.timeout, **kwargs
            )
        except httpx.HTTPError as exc:
            raise error_for_transport(self.name, exc) from exc
        if response.is_error:
            raise self._status_error(response)
        return response

    # --- answers --------------------------------------------------------------------

    def _status_error(self, response: httpx.Response) -> ProviderError:
        return status_error(self.name, response)

    def _stream_error(self, error: _ErrorBody) -> ProviderError:
        return stream_error(self.name, error)

    def _tool_call(self, call: _FunctionCall, signature: str | None, fail: _Fail) -> ToolCall:
        args = call.args
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError:
                args = None
        if not isinstance(args, dict | None):
            raise fail(self.name, f"the arguments of tool call {call.name!r} are not an object")
        tool_call = ToolCall(
            id=call.id or f"call_{uuid.uuid4().hex}", name=call.name, arguments=args or {}
        )
        if signature:
            self._signatures[tool_call.id] = signature
            while len(self._signatures) > _SIGNATURES_KEPT:
                self._signatures.popitem(last=False)
        return tool_call

    def _chunk_events(self, data: str, state: _StreamState) -> list[StreamEvent]:
        try:
            chunk = _GenerateResponse.model_validate_json(data)
        except ValidationError as exc:
            raise broken_stream(self.name, "a chunk is not a GenerateContentResponse") from exc
        if chunk.error is not None:
            raise self._stream_error(chunk.error)
        if chunk.usage_metadata is not None:
            state.usage = _usage(chunk.usage_metadata)  # running totals: the last one wins
        if not chunk.candidates:
            if chunk.prompt_feedback and chunk.prompt_feedback.block_reason:
                state.finish = "content_filter"
            return []
        candidate = chunk.candidates[0]
        events: list[StreamEvent] = []
        for part in candidate.content.parts if candidate.content else []:
            if part.function_call is not None:
                state.has_calls = True
                call = self._tool_call(part.function_call, part.thought_signature, broken_stream)
                events.append(ToolCallEvent(tool_call=call))
            elif part.text and not part.thought:
                events.append(TextDelta(text=part.text))
        if candidate.finish_reason:
            state.finish = _finish(candidate.finish_reason, has_calls=state.has_calls)
        return events

    # --- the Provider protocol ------------------------------------------------------

    async def chat(self, request: ChatRequest) -> ChatResult:
        """One ``generateContent`` call."""
        model = self._model(request)
        url = self._url(model, "generateContent")
        response = await self._call("POST", url, content=self._body(request))
        try:
            answer = _GenerateResponse.model_validate_json(response.content)
        except ValidationError as exc:
            raise malformed(self.name, "the body is not a GenerateContentResponse") from exc
        result = ChatResult(
            content="", provider=self.name, model=model, usage=_usage(answer.usage_metadata)
        )
        if not answer.candidates:
            if answer.prompt_feedback and answer.prompt_feedback.block_reason:
                return result.model_copy(update={"finish_reason": "content_filter"})
            raise malformed(self.name, "no candidates and no promptFeedback.blockReason")
        candidate = answer.candidates[0]
        parts = candidate.content.parts if candidate.content else []
        calls = tuple(
            self._tool_call(p.function_call, p.thought_signature, malformed)
            for p in parts
            if p.function_call is not None
        )
        content = "".join(p.text for p in parts if p.text and not p.thought)
        finish = _finish(candidate.finish_reason, has_calls=bool(calls))
        return result.model_copy(
            update={"content": content, "tool_calls": calls, "finish_reason": finish}
        )

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """``streamGenerateContent?alt=sse``: text as it comes, whole function calls, done."""
        model = self._model(request)
        url = self._url(model, "streamGenerateContent", "?alt=sse")
        state = _StreamState()
        stream = self._client.stream(
            "POST", url, content=self._body(request), headers=self._headers,
            timeout=self._options.timeout,
        )  # fmt: skip
        try:
            async with stream as response:
                if response.is_error:
                    await response.aread()
                    raise self._status_error(response)
                async for sse in EventSource(response).aiter_sse():
                    for event in self._chunk_events(sse.data, state) if sse.data.strip() else []:
                        yield event
        except httpx.HTTPError as exc:
            raise error_for_transport(self.name, exc) from exc
        except SSEError as exc:
            raise broken_stream(self.name, f"not an event stream ({exc})") from exc
        if state.finish is None:
            raise broken_stream(self.name, "it ended without a finishReason")
        yield StreamDone(
            provider=self.name, model=model, finish_reason=state.finish, usage=state.usage
        )

    async def _models_page(self, *, page_size: int, token: str | None) -> _ModelPage:
        params = {"pageSize": str(page_size), **({"pageToken": token} if token else {})}
        response = await self._call(
            "GET", self._options.url(f"/{API_VERSION}/models"), params=params
        )
        try:
            return _ModelPage.model_validate_json(response.content)
        except ValidationError as exc:
            raise malformed(self.name, "the model list is not a ListModelsResponse") from exc

    async def list_models(self) -> list[str]:
        """Every model that answers ``generateContent``, all pages, without ``models/``."""
        found: list[str] = []
        token: str | None = None
        for _ in range(_MAX_PAGES):
            page = await self._models_page(page_size=_PAGE_SIZE, token=token)
            found += [
                m.name.removeprefix("models/")
                for m in page.models
                if "generateContent" in m.supported_generation_methods
            ]
            token = page.next_page_token
            if not token:
                break
        return found

    async def health_check(self) -> HealthStatus:
        """One authenticated page of the model list, timed."""
        start = time.perf_counter()
        try:
            await self._models_page(page_size=1, token=None)
        except ProviderError as exc:
            return HealthStatus(healthy=False, latency_ms=monotonic_ms(start), error=exc.message)
        return HealthStatus(healthy=True, latency_ms=monotonic_ms(start))

    async def close(self) -> None:
        """Nothing to close: the HTTP client belongs to the caller."""
