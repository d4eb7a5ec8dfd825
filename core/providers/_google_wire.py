"""Gemini's Generative Language API on the wire, for :mod:`core.providers.google`.

What is here: the private pydantic models (camelCase on the wire); :func:`gemini_schema`, which
cuts a JSON schema down to the ``Schema`` subset the API accepts; the ``generateContent``
request built from ``core.types`` (roles, ``systemInstruction``, ``functionResponse`` parts,
replayed ``thoughtSignature``s); finish reasons and usage read back; and error bodies read
into a ``ProviderError`` (``API_KEY_INVALID``, the ``RetryInfo`` delay, in-stream errors). The
HTTP calls, the signature memory and the stream loop stay in ``google.py``.

Names keep their leading underscore: nothing outside ``google.py`` should use them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from core.errors import (
    ProviderAuthError,
    ProviderBadRequest,
    ProviderError,
    ProviderOverloaded,
    ProviderRateLimited,
)
from core.providers.base import broken_stream, error_for_status, parse_retry_after
from core.types import ChatMessage, ChatRequest, FinishReason, Role, ToolSpec, Usage

# Documented by Google for function calls whose signature was lost or made by another model.
PLACEHOLDER_SIGNATURE = "skip_thought_signature_validator"
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


# --- building a request -------------------------------------------------------------------


def generate_body(request: ChatRequest, *, signatures: Mapping[str, str], provider: str) -> bytes:
    """The JSON body of ``generateContent`` / ``streamGenerateContent`` for ``request``.

    ``signatures`` holds the ``thoughtSignature`` each earlier tool call came with, by id.
    """
    system = [
        _Part(text=m.content) for m in request.messages if m.role is Role.SYSTEM and m.content
    ]
    contents: list[_Content] = []
    names: dict[str, str] = {}  # tool call id -> tool name, for results that name none
    for message in request.messages:
        if message.role is Role.SYSTEM:
            continue
        role, parts = _parts(message, names, signatures=signatures, provider=provider)
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


def _parts(
    message: ChatMessage,
    names: dict[str, str],
    *,
    signatures: Mapping[str, str],
    provider: str,
) -> tuple[str, list[_Part]]:
    if message.role is Role.TOOL:
        name = message.name or names.get(message.tool_call_id or "")
        if not name:
            raise ProviderBadRequest(
                f"{provider}: a tool result names no tool and answers no earlier tool call "
                f"(tool_call_id={message.tool_call_id!r}); Gemini needs the tool's name",
                provider=provider,
            )
        result = _FunctionResponse(
            name=name, response=_tool_response(message.content), id=message.tool_call_id
        )
        return "user", [_Part(function_response=result)]
    parts = [_Part(text=message.content)] if message.content else []
    if message.role is Role.USER:
        return "user", parts
    replayed = [signatures.get(call.id) for call in message.tool_calls]
    if replayed and not any(replayed):
        replayed[0] = PLACEHOLDER_SIGNATURE  # the first call of a step carries it
    for call, signature in zip(message.tool_calls, replayed, strict=True):
        names[call.id] = call.name
        function_call = _FunctionCall(name=call.name, args=call.arguments, id=call.id)
        parts.append(_Part(function_call=function_call, thought_signature=signature))
    return "model", parts


# --- reading an error ---------------------------------------------------------------------


def status_error(provider: str, response: httpx.Response) -> ProviderError:
    """The error for a non-2xx answer, from the API's error body when it sent one."""
    status = response.status_code
    try:
        error: _ErrorBody | None = _ErrorEnvelope.model_validate_json(response.content).error
    except ValidationError:
        error = None
    detail = error.message if error and error.message else response.text
    if error and any(d.reason == "API_KEY_INVALID" for d in error.details):
        return ProviderAuthError(
            f"{provider}: {detail} (HTTP {status}, API_KEY_INVALID): "
            f"check providers.{provider}.api_key",
            provider=provider,
        )
    hint = _retry_delay(error) if error else None
    return error_for_status(
        provider=provider,
        status=status,
        detail=detail,
        retry_after=hint if hint is not None else parse_retry_after(response.headers),
        overloaded=status == 503,
        context_too_long=bool(_INPUT_TOO_LONG.search(detail)) if status == 400 else None,
    )


def stream_error(provider: str, error: _ErrorBody) -> ProviderError:
    """The error for an ``error`` object sent inside a stream, after ``200 OK``."""
    detail = f"{provider}: {error.message or 'error'} ({error.status or error.code})"
    if error.status == "UNAVAILABLE":
        return ProviderOverloaded(
            f"{detail} mid-stream", provider=provider, retry_after=_retry_delay(error)
        )
    if error.status == "RESOURCE_EXHAUSTED":
        return ProviderRateLimited(
            f"{detail} mid-stream", provider=provider, retry_after=_retry_delay(error)
        )
    return broken_stream(provider, f"the API sent an error: {detail}")
