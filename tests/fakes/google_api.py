"""A loopback fake of the Gemini API (Generative Language ``v1beta``).

Serves ``POST /v1beta/models/{model}:generateContent``,
``POST /v1beta/models/{model}:streamGenerateContent?alt=sse`` and ``GET /v1beta/models``,
checks ``x-goog-api-key`` (or ``?key=``) like the real API, rejects what the real API
rejects (a role other than user/model, empty parts, a function response without a name or
not answering a function call turn, schema keys outside the ``Schema`` subset, a Gemini-3
style missing ``thoughtSignature``), and renders the steps of a :class:`Script`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.llm_script import (
    CutStream,
    Fail,
    Malformed,
    RecordedRequest,
    Reply,
    Script,
    Step,
    StreamError,
    split_text,
)

CONTEXT_MESSAGE = (
    "The input token count (1048577) exceeds the maximum number of tokens allowed (1048576)."
)
OVERLOADED_MESSAGE = "The model is overloaded. Please try again later."
MISSING_SIGNATURE = (
    "Function call is missing a thought_signature in functionCall parts. This is required for "
    "tools to work correctly, and missing thought_signature may lead to degraded model "
    "performance. Additional data, function call `default_api:{name}` , position {position}. "
    "Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
)
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
FINISH_REASONS = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"}
REQUEST_FIELDS = {"contents", "systemInstruction", "tools", "generationConfig", "toolConfig"}
REQUEST_FIELDS |= {"safetySettings", "cachedContent"}
PART_DATA = {"text", "functionCall", "functionResponse", "inlineData", "fileData"}
PART_FIELDS = PART_DATA | {"thought", "thoughtSignature"}
SCHEMA_FIELDS = {
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
}
# Models that exist but cannot chat: the provider must filter them out of its listing.
EMBEDDING_MODEL = {
    "name": "models/text-embedding-004",
    "supportedGenerationMethods": ["embedContent"],
}


class ApiError(Exception):
    """An error answer in the API's shape: ``{"error": {code, message, status, details}}``."""

    def __init__(self, code: int, message: str, *, details: list[Any] | None = None) -> None:
        super().__init__(message)
        self.body: dict[str, Any] = {
            "code": code,
            "message": message,
            "status": STATUS_NAMES.get(code, "UNKNOWN"),
        }
        if details:
            self.body["details"] = details

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": self.body}, status_code=self.body["code"], headers=headers)


def signature_for(call_id: str) -> str:
    """The (base64) thoughtSignature the fake attaches to a function call."""
    return base64.b64encode(f"fake-thought:{call_id}".encode()).decode()


def _check_key(request: Request, script: Script) -> None:
    key = request.headers.get("x-goog-api-key") or request.query_params.get("key")
    if not key:
        raise ApiError(
            403,
            "Method doesn't allow unregistered callers (callers without established identity)."
            " Please use API key or other form of API consumer identity to call this API.",
        )
    if key != script.api_key:
        message = "API key not valid. Please pass a valid API key."
        info = {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        }
        raise ApiError(400, message, details=[info])


def _invalid(message: str) -> ApiError:
    return ApiError(400, message)


def _unknown(name: str, where: str) -> ApiError:
    return _invalid(
        f"Invalid JSON payload received. Unknown name \"{name}\" at '{where}': Cannot find field."
    )


def _check_schema(schema: Any, where: str) -> None:
    if not isinstance(schema, dict):
        raise _invalid(f"Invalid JSON payload received. Invalid value at '{where}'.")
    for key in schema.keys() - SCHEMA_FIELDS:
        raise _unknown(key, where)
    if str(schema.get("type", "")).upper() == "OBJECT" and not schema.get("properties"):
        raise _invalid(
            f"* GenerateContentRequest.{where}.properties: should be non-empty for OBJECT type\n"
        )
    for name, sub in (schema.get("properties") or {}).items():
        _check_schema(sub, f"{where}.properties[{name}]")
    if "items" in schema:
        _check_schema(schema["items"], f"{where}.items")
    for index, sub in enumerate(schema.get("anyOf") or []):
        _check_schema(sub, f"{where}.any_of[{index}]")


def _check_part(part: Any, where: str) -> None:
    if not isinstance(part, dict) or not PART_DATA & part.keys():
        raise _invalid(
            f"* GenerateContentRequest.{where}.data: required oneof field 'data' must "
            "have one initialized field\n"
        )
    for key in part.keys() - PART_FIELDS:
        raise _unknown(key, where)
    if part.get("text") == "":
        raise _invalid(
            "Unable to submit request because it has an empty text parameter. Add a "
            "value to the parameter and try again."
        )
    for field, struct in (("functionCall", "args"), ("functionResponse", "response")):
        value = part.get(field)
        if value is None:
            continue
        if not value.get("name"):
            raise _invalid(f"* GenerateContentRequest.{where}.{field}.name: Name cannot be empty.")
        required = struct == "response"  # a function response must carry one; args may be absent
        if not isinstance(value.get(struct, {}), dict) or (required and struct not in value):
            raise _invalid(
                f"Invalid JSON payload received. Invalid value at '{where}.{field}."
                f"{struct}' (type.googleapis.com/google.protobuf.Struct)"
            )
    signature = part.get("thoughtSignature")
    try:  # bytes in proto JSON: base64, standard or URL-safe alphabet
        base64.b64decode(str(signature).replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        if signature is not None:
            raise _invalid(
                f"Invalid value at '{where}.thought_signature' (TYPE_BYTES), Base64 "
                f'decoding failed for "{signature}"'
            ) from None


def _check_contents(contents: Any) -> None:
    if not isinstance(contents, list) or not contents:
        raise _invalid("* GenerateContentRequest.contents: contents is not specified\n")
    calls_before = 0
    for i, content in enumerate(contents):
        if content.get("role") not in ("user", "model"):
            raise _invalid("Please use a valid role: user, model.")
        parts = content.get("parts") or []
        if not parts:
            raise _invalid(
                f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.\n"
            )
        for j, part in enumerate(parts):
            _check_part(part, f"contents[{i}].parts[{j}]")
        calls = [p for p in parts if "functionCall" in p]
        if calls and "thoughtSignature" not in calls[0]:  # Gemini 3 checks the first call
            name, position = calls[0]["functionCall"]["name"], parts.index(calls[0])
            raise _invalid(MISSING_SIGNATURE.format(name=name, position=position))
        answers = sum("functionResponse" in p for p in parts)
        if answers and not calls_before:
            raise _invalid(
                "Please ensure that function response turn comes immediately after a "
                "function call turn."
            )
        if answers and answers != calls_before:
            raise _invalid(
                "Please ensure that the number of function response parts is equal to "
                "the number of function call parts of the function call turn."
            )
        calls_before = len(calls)


def _check_body(body: Any) -> None:
    if not isinstance(body, dict):
        raise _invalid("Invalid JSON payload received. Unexpected token.")
    for key in body.keys() - REQUEST_FIELDS:
        raise _unknown(key, "")
    _check_contents(body.get("contents"))
    for part in (body.get("systemInstruction") or {}).get("parts", []):
        _check_part(part, "system_instruction.parts")
    for t, tool in enumerate(body.get("tools") or []):
        for d, declaration in enumerate(tool.get("functionDeclarations") or []):
            where = f"tools[{t}].function_declarations[{d}]"
            if not declaration.get("name"):
                raise _invalid(f"* GenerateContentRequest.{where}.name: Name cannot be empty.\n")
            if "parameters" in declaration:
                _check_schema(declaration["parameters"], f"{where}.parameters")


def _normalized(body: dict[str, Any]) -> list[tuple[str, str]]:
    system = (body.get("systemInstruction") or {}).get("parts", [])
    messages = [("system", part["text"]) for part in system]
    for content in body["contents"]:
        role = "assistant" if content["role"] == "model" else "user"
        for part in content["parts"]:
            if "functionCall" in part:
                call = part["functionCall"]
                arguments = json.dumps(call.get("args", {}))
                messages.append(("assistant", f"call {call['name']}({arguments})"))
            elif "functionResponse" in part:
                answer = part["functionResponse"]
                response = answer["response"]
                text = response["result"] if set(response) == {"result"} else json.dumps(response)
                messages.append(("tool", f"{answer.get('id') or answer['name']}={text}"))
            elif "text" in part and not part.get("thought"):
                messages.append((role, part["text"]))
    return messages


def _usage(reply: Reply, output_tokens: int) -> dict[str, int]:
    return {
        "promptTokenCount": reply.input_tokens,
        "candidatesTokenCount": output_tokens,
        "totalTokenCount": reply.input_tokens + output_tokens,
    }


def _call_parts(reply: Reply) -> list[dict[str, Any]]:
    parts = []
    for index, call in enumerate(reply.tool_calls):
        function_call: dict[str, Any] = {"name": call.name, "args": call.arguments}
        if call.id is not None:  # like most Gemini models, no id unless the test gives one
            function_call["id"] = call.id
        part: dict[str, Any] = {"functionCall": function_call}
        if index == 0:  # Gemini 3 signs the first function call of a step
            part["thoughtSignature"] = signature_for(call.id or call.name)
        parts.append(part)
    return parts


def _response(parts: list[dict[str, Any]], usage: dict[str, int], finish: str | None) -> str:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    body = {"candidates": [candidate], "usageMetadata": usage, "modelVersion": "fake-001"}
    return json.dumps(body)


def _fail(step: Fail) -> Response:
    headers = {"Retry-After": f"{step.retry_after:g}"} if step.retry_after is not None else {}
    if step.raw_body is not None:
        return Response(
            step.raw_body, status_code=step.status, headers=headers, media_type="application/json"
        )
    status, message = step.status, step.message
    if step.kind == "context":
        status, message = 400, CONTEXT_MESSAGE
    elif step.kind == "overloaded":
        status, message = 503, OVERLOADED_MESSAGE
    details = []
    if step.retry_after is not None:
        details.append(
            {
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": f"{step.retry_after:g}s",
            }
        )
    return ApiError(status, message, details=details).response(headers)


def _reply_of(step: Step) -> Reply:
    if isinstance(step, CutStream | StreamError):
        return step.reply
    return step if isinstance(step, Reply) else Reply(text="a stream with a chunk that is not JSON")


async def _stream(step: Step) -> AsyncIterator[bytes]:
    reply = _reply_of(step)
    pieces = split_text(reply.text)
    chunks = [[{"text": piece}] for piece in pieces]
    if reply.tool_calls:
        chunks.append(_call_parts(reply))
    chunks = chunks or [[{"text": ""}]]
    for index, parts in enumerate(chunks):
        if isinstance(step, CutStream | StreamError | Malformed) and index == step.after_chunks:
            break
        if index and reply.chunk_delay_s:
            await asyncio.sleep(reply.chunk_delay_s)
        last = index == len(chunks) - 1
        # Every chunk carries running totals (not increments): only the last one is final.
        tokens = reply.output_tokens if last else min(index + 1, reply.output_tokens)
        finish = FINISH_REASONS[reply.finish_reason] if last else None
        yield f"data: {_response(parts, _usage(reply, tokens), finish)}\r\n\r\n".encode()
    if isinstance(step, StreamError):
        code = 503 if step.kind == "overloaded" else 500
        message = OVERLOADED_MESSAGE if step.kind == "overloaded" else step.message
        yield f"data: {json.dumps({'error': ApiError(code, message).body})}\r\n\r\n".encode()
    elif isinstance(step, Malformed):
        yield b"data: {not json\r\n\r\n"


def make_app(script: Script, *, max_page_size: int = 1000) -> Starlette:
    """The fake Gemini API over ``script``; ``max_page_size`` caps ``pageSize`` like the API."""

    async def list_models(request: Request) -> Response:
        script.requests.append(
            RecordedRequest("GET", request.url.path, dict(request.headers), None)
        )
        try:
            _check_key(request, script)
        except ApiError as error:
            return error.response()
        models = [
            {
                "name": f"models/{name}",
                "displayName": name,
                "supportedGenerationMethods": ["generateContent", "countTokens"],
            }
            for name in script.models
        ] + [EMBEDDING_MODEL]
        size = min(int(request.query_params.get("pageSize") or 50), max_page_size)
        start = int(request.query_params.get("pageToken") or 0)
        page: dict[str, Any] = {"models": models[start : start + size]}
        if start + size < len(models):
            page["nextPageToken"] = str(start + size)
        return JSONResponse(page)

    async def generate(request: Request) -> Response:
        model, _, method = request.path_params["target"].partition(":")
        try:
            body: Any = json.loads(await request.body())
        except ValueError:
            body = None
        recorded = RecordedRequest(
            "POST",
            request.url.path,
            dict(request.headers),
            body,
            model=model,
            stream=method == "streamGenerateContent",
        )
        script.requests.append(recorded)
        try:
            _check_key(request, script)
            if model not in script.models or not method.endswith("enerateContent"):
                raise ApiError(
                    404,
                    f"models/{model} is not found for API version v1beta, or is "
                    f"not supported for {method}. Call ListModels to see the list of "
                    "available models and their supported methods.",
                )
            if recorded.stream and request.query_params.get("alt") != "sse":
                raise _invalid("this fake streams only with alt=sse")
            _check_body(body)
        except ApiError as error:
            return error.response()
        recorded.messages = _normalized(body)
        declarations = [d for t in body.get("tools") or [] for d in t["functionDeclarations"]]
        recorded.tools = [d["name"] for d in declarations]
        recorded.max_tokens = (body.get("generationConfig") or {}).get("maxOutputTokens")
        step = script.next_step(recorded)
        if isinstance(step, Fail):
            return _fail(step)
        reply = _reply_of(step)
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if recorded.stream:
            return StreamingResponse(_stream(step), media_type="text/event-stream")
        if isinstance(step, Malformed):
            return Response("<html>502 Bad Gateway</html>", media_type="text/html")
        # A cut or failing stream step asked of a non-stream call answers its whole reply.
        parts = ([{"text": reply.text}] if reply.text else []) + _call_parts(reply)
        answer = _response(
            parts, _usage(reply, reply.output_tokens), FINISH_REASONS[reply.finish_reason]
        )
        return Response(answer, media_type="application/json")

    return Starlette(
        routes=[
            Route("/v1beta/models", list_models, methods=["GET"]),
            Route("/v1beta/models/{target}", generate, methods=["POST"]),
        ]
    )
