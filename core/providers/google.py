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
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import httpx
from httpx_sse import EventSource, SSEError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from core.errors import (
    ProviderAuthError,
    ProviderBadRequest,
    ProviderError,
    ProviderOverloaded,
    ProviderRateLimited,
)
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
    ToolSpec,
    Usage,
)

API_VERSION = "v1beta"
# Documented by Google for function calls whose signature was lost or made by another model.
PLACEHOLDER_SIGNATURE = "skip_thought_signature_validator"
_SIGNATURES_KEPT = 4096
_PAGE_SIZE = 1000  # the API's maximum
_MAX_PAGES = 100
_FILTERED = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}
_FILTERED |= {"IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
_INPUT_TOO_LONG = re.compile(r"input token count.*exceeds the maximum", re.IGNORECASE | re.DOTALL)

# The keys of the API's ``Schema`` object; anything else in ``parameters`` is a 400.
_SCHEMA_KEYS = frozenset(
    "type format title description nullable enum maxItems minItems properties required "
    "minProperties maxProperties minLength maxLength pattern example anyOf propertyOrdering "
    "default items minimum maximum".split()
)
# ``format`` values the API accepts, per type; others (email, uri, uuid ...) are a 400.
_FORMATS = {"string": {"enum", "date-time"}, "number": {"float", "double"}}
_FORMATS["integer"] = {"int32", "int64"}
# How a parse failure is reported: ``malformed`` in an answer, ``broken_stream`` in a stream.
_Fail = Callable[[str, str], ProviderError]


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class _FunctionCall(_Wire):
    name: str
    args: Any = None
    id: str | None = None


class _FunctionResponse(_Wire):
    name: str
    response: dict[str, Any]
    id: str | None = None


class _Part(_Wire):
    text: str | None = None
    thought: bool | None = None
    thought_signature: str | None = None
    function_call: _FunctionCall | None = None
    function_response: _FunctionResponse | None = None


class _Content(_Wire):
    role: str | None = None
    parts: list[_Part] = Field(default_factory=list)


class _FunctionDeclaration(_Wire):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class _Tool(_Wire):
    function_declarations: list[_FunctionDeclaration]


class _GenerationConfig(_Wire):
    max_output_tokens: int | None = None
    temperature: float | None = None


class _GenerateRequest(_Wire):
    contents: list[_Content]
    system_instruction: _Content | None = None
    tools: list[_Tool] | None = None
    generation_config: _GenerationConfig | None = None


class _Candidate(_Wire):
    content: _Content | None = None
    finish_reason: str | None = None


class _UsageMetadata(_Wire):
    prompt_token_count: int = 0
    candidates_token_count: int = 0
    thoughts_token_count: int = 0


class _PromptFeedback(_Wire):
    block_reason: str | None = None


class _ErrorDetail(_Wire):
    type: str = Field(default="", alias="@type")
    reason: str | None = None
    retry_delay: str | None = None


class _ErrorBody(_Wire):
    code: int = 0
    message: str = ""
    status: str = ""
    details: list[_ErrorDetail] = Field(default_factory=list)


class _ErrorEnvelope(_Wire):
    error: _ErrorBody


class _GenerateResponse(_Wire):
    candidates: list[_Candidate] = Field(default_factory=list)
    usage_metadata: _UsageMetadata | None = None
    prompt_feedback: _PromptFeedback | None = None
    error: _ErrorBody | None = None  # only inside a stream


class _Model(_Wire):
    name: str
    supported_generation_methods: list[str] = Field(default_factory=list)


class _ModelPage(_Wire):
    models: list[_Model] = Field(default_factory=list)
    next_page_token: str | None = None


def gemini_schema(
    schema: Any, *, _root: Any = None, _expanding: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """A JSON schema cut down to what Gemini's ``Schema`` accepts, recursively.

    Local ``$ref``s (``#/$defs/X``, ``#/definitions/X``) are inlined (a recursive one only
    once) and ``allOf`` merged, ``oneOf`` becomes ``anyOf``, a type list becomes ``type`` +
    ``nullable`` (or ``anyOf``), a string ``const`` a one-value ``enum``. Dropped: enums
    that are not all strings, ``format``s the API refuses, and every key outside its subset
    (``$schema``, ``additionalProperties``, ``examples``, ``exclusiveMinimum`` ...).
    """
    if not isinstance(schema, dict):
        return {}
    root = schema if _root is None else _root
    merged: dict[str, Any] = {}
    for piece in (schema, *(schema.get("allOf") or [])):
        if not isinstance(piece, dict):
            continue
        ref = piece.get("$ref")
        if isinstance(ref, str) and ref not in _expanding:
            _expanding |= {ref}
            piece = {**_resolve(root, ref), **piece}
        for key, value in piece.items():
            merged.setdefault(key, value)
    if "oneOf" in merged:
        merged.setdefault("anyOf", merged["oneOf"])
    if isinstance(merged.get("const"), str):
        merged.setdefault("enum", [merged["const"]])

    def deeper(sub: Any) -> dict[str, Any]:
        return gemini_schema(sub, _root=root, _expanding=_expanding)

    out = {key: value for key, value in merged.items() if key in _SCHEMA_KEYS}
    if isinstance(out.get("properties"), dict):
        out["properties"] = {name: deeper(sub) for name, sub in out["properties"].items()}
    if "items" in out:  # a tuple's item list has no counterpart: the first one stands
        items = out["items"]
        out["items"] = deeper(items[0] if isinstance(items, list) and items else items)
    if isinstance(out.get("anyOf"), list):
        out["anyOf"] = [deeper(sub) for sub in out["anyOf"]]
    if not isinstance(out.get("enum"), list) or not all(isinstance(v, str) for v in out["enum"]):
        out.pop("enum", None)
    kinds = out.pop("type", None)
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if "null" in kinds:
        out["nullable"] = True
    named = [kind for kind in kinds if isinstance(kind, str) and kind != "null"]
    if len(named) == 1:
        out["type"] = named[0]
    elif named:
        out["anyOf"] = [{"type": kind} for kind in named]
    if out.get("format") not in _FORMATS.get(out.get("type", ""), ()):
        out.pop("format", None)
    if isinstance(out.get("required"), list) and isinstance(out.get("properties"), dict):
        out["required"] = [name for name in out["required"] if name in out["properties"]]
    return out


def _resolve(root: dict[str, Any], ref: str) -> dict[str, Any]:
    section, _, name = ref.removeprefix("#/").partition("/")
    found = root.get(section, {}).get(name) if section in ("$defs", "definitions") else None
    return found if isinstance(found, dict) else {}


def _declaration(tool: ToolSpec) -> _FunctionDeclaration:
    parameters: dict[str, Any] | None = gemini_schema(tool.parameters)
    # An object without properties is a 400: a function without arguments omits the schema.
    if parameters and parameters.get("type") == "object" and not parameters.get("properties"):
        parameters = None
    description = tool.description or None
    return _FunctionDeclaration(name=tool.name, description=description, parameters=parameters)


def _tool_response(content: str) -> dict[str, Any]:
    try:
        parsed = json.loads(content)
    except ValueError:
        parsed = None
    return parsed if isinstance(parsed, dict) else {"result": content}


def _finish(reason: str | None, *, has_calls: bool) -> FinishReason:
    if reason in (None, "STOP"):
        return "tool_calls" if has_calls else "stop"
    if reason == "MAX_TOKENS":
        return "length"
    return "content_filter" if reason in _FILTERED else "error"


def _usage(meta: _UsageMetadata | None) -> Usage:
    if meta is None:
        return Usage()
    # Thinking tokens are billed as output; candidatesTokenCount leaves them out.
    output = meta.candidates_token_count + meta.thoughts_token_count
    return Usage(input_tokens=meta.prompt_token_count, output_tokens=output)


def _retry_delay(error: _ErrorBody) -> float | None:
    for detail in error.details:
        match = _DURATION.match(detail.retry_delay or "")
        if detail.type.endswith("google.rpc.RetryInfo") and match:
            return float(match.group(1))
    return None


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

    def _url(self, model: str, method: str) -> str:
        return self._options.url(f"/{API_VERSION}/models/{quote(model, safe='')}:{method}")

    def _body(self, request: ChatRequest) -> bytes:
        system = [
            _Part(text=m.content) for m in request.messages if m.role is Role.SYSTEM and m.content
        ]
        contents: list[_Content] = []
        names: dict[str, str] = {}  # tool call id -> tool name, for results that name none
        for message in request.messages:
            if message.role is Role.SYSTEM:
                continue
            role, parts = self._parts(message, names)
            if not parts:
                continue  # a content without parts is a 400
            if contents and contents[-1].role == role:
                contents[-1].parts.extend(parts)
            else:
                contents.append(_Content(role=role, parts=parts))
        config = None
        if request.max_tokens is not None or request.temperature is not None:
            config = _GenerationConfig(
                max_output_tokens=request.max_tokens, temperature=request.temperature
            )
        tools = [_Tool(function_declarations=[_declaration(t) for t in request.tools])]
        wire = _GenerateRequest(
            contents=contents,
            system_instruction=_Content(parts=system) if system else None,
            tools=tools if request.tools else None,
            generation_config=config,
        )
        return wire.model_dump_json(by_alias=True, exclude_none=True).encode()

    def _parts(self, message: ChatMessage, names: dict[str, str]) -> tuple[str, list[_Part]]:
        if message.role is Role.TOOL:
            name = message.name or names.get(message.tool_call_id or "")
            if not name:
                raise ProviderBadRequest(
                    f"{self.name}: a tool result names no tool and answers no earlier tool call "
                    f"(tool_call_id={message.tool_call_id!r}); Gemini needs the tool's name",
                    provider=self.name,
                )
            result = _FunctionResponse(
                name=name, response=_tool_response(message.content), id=message.tool_call_id
            )
            return "user", [_Part(function_response=result)]
        parts = [_Part(text=message.content)] if message.content else []
        if message.role is Role.USER:
            return "user", parts
        signatures = [self._signatures.get(call.id) for call in message.tool_calls]
        if signatures and not any(signatures):
            signatures[0] = PLACEHOLDER_SIGNATURE  # the first call of a step carries it
        for call, signature in zip(message.tool_calls, signatures, strict=True):
            names[call.id] = call.name
            function_call = _FunctionCall(name=call.name, args=call.arguments, id=call.id)
            parts.append(_Part(function_call=function_call, thought_signature=signature))
        return "model", parts

    async def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
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
        status = response.status_code
        try:
            error: _ErrorBody | None = _ErrorEnvelope.model_validate_json(response.content).error
        except ValidationError:
            error = None
        detail = error.message if error and error.message else response.text
        if error and any(d.reason == "API_KEY_INVALID" for d in error.details):
            return ProviderAuthError(
                f"{self.name}: {detail} (HTTP {status}, API_KEY_INVALID): "
                f"check providers.{self.name}.api_key",
                provider=self.name,
            )
        hint = _retry_delay(error) if error else None
        return error_for_status(
            provider=self.name,
            status=status,
            detail=detail,
            retry_after=hint if hint is not None else parse_retry_after(response.headers),
            overloaded=status == 503,
            context_too_long=bool(_INPUT_TOO_LONG.search(detail)) if status == 400 else None,
        )

    def _stream_error(self, error: _ErrorBody) -> ProviderError:
        detail = f"{self.name}: {error.message or 'error'} ({error.status or error.code})"
        if error.status == "UNAVAILABLE":
            return ProviderOverloaded(
                f"{detail} mid-stream", provider=self.name, retry_after=_retry_delay(error)
            )
        if error.status == "RESOURCE_EXHAUSTED":
            return ProviderRateLimited(
                f"{detail} mid-stream", provider=self.name, retry_after=_retry_delay(error)
            )
        return broken_stream(self.name, f"the API sent an error: {detail}")

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
        url = self._url(model, "streamGenerateContent") + "?alt=sse"
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
