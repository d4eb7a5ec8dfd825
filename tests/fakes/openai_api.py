"""A loopback fake of the Chat Completions API, in three flavours.

* ``openai``: OpenAI itself. Nested errors ``{"error": {"message", "type", "param", "code"}}``;
  rejects ``max_tokens`` (current models take ``max_completion_tokens``), tool call ids over
  40 characters and tool call arguments that are not JSON strings; sends x-ratelimit headers
  on a 429; a stream's usage chunk only when ``stream_options.include_usage`` asks for it.
* ``openai_compatible``: a self-hosted server in vLLM's manner. Flat errors
  ``{"object": "error", "message", "type", "param", "code": <status>}`` and ``{"error":
  "Unauthorized"}`` for a bad key; no key needed when ``script.api_key`` is None; the usage
  chunk only when asked (and never with ``stream_usage=False``, like servers that ignore it).
* ``mistral``: flat errors ``{"object": "error", ...}``, the gateway's ``{"message":
  "Unauthorized"}`` / ``{"detail": "Unauthorized"}``, 422 for unknown request fields (so
  ``stream_options`` is refused), 400 for tool call ids that are not 9 alphanumerics, and
  usage on the last stream chunk, unasked.

Every flavour serves ``POST /v1/chat/completions`` and ``GET /v1/models`` and answers a tool
result that matches no earlier tool call with a 400, as the real APIs do.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import string
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal, NoReturn

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
    StreamError,
    split_text,
)

Flavour = Literal["openai", "openai_compatible", "mistral"]

_MISTRAL_ID = re.compile(r"[a-zA-Z0-9]{9}")
_MISTRAL_FIELDS = {
    "model",
    "messages",
    "temperature",
    "top_p",
    "max_tokens",
    "stream",
    "stop",
    "random_seed",
    "response_format",
    "tools",
    "tool_choice",
    "presence_penalty",
    "frequency_penalty",
    "n",
    "prediction",
    "parallel_tool_calls",
    "safe_prompt",
    "prompt_mode",
}
_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    429: "requests",
    500: "server_error",
    503: "server_error",
}
_VLLM_TYPES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    404: "NotFoundError",
    429: "RateLimitError",
    500: "InternalServerError",
    503: "ServiceUnavailableError",
}


_MALFORMED_TEXT = Reply(text="this answer carries a chunk that is not JSON")


class _Rejected(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def _alnum(n: int) -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(n))


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content or ""


def _normalize(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    pairs = []
    for message in messages:
        role, content = message.get("role", ""), _text(message.get("content"))
        if role == "tool":
            pairs.append(
                ("tool", f"{message.get('tool_call_id') or message.get('name')}={content}")
            )
            continue
        if content or not message.get("tool_calls"):
            pairs.append((role, content))
        for call in message.get("tool_calls") or ():
            function = call.get("function", {})
            arguments = function.get("arguments")
            try:
                arguments = json.loads(arguments) if isinstance(arguments, str) else arguments
            except json.JSONDecodeError:
                pass
            pairs.append(("assistant", f"call {function.get('name')}({json.dumps(arguments)})"))
    return pairs


class _Fake:
    def __init__(self, script: Script, flavour: Flavour, stream_usage: bool) -> None:
        self.script = script
        self.flavour = flavour
        self.stream_usage = stream_usage

    # --- errors in each flavour's shape ------------------------------------------------

    def error(
        self,
        status: int,
        message: Any,
        *,
        type_: str | None = None,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> JSONResponse:
        if self.flavour == "openai":
            info = {
                "message": message,
                "type": type_ or _TYPES.get(status, "invalid_request_error"),
                "param": param,
                "code": code,
            }
            return JSONResponse({"error": info}, status, headers=headers)
        flat = {"object": "error", "message": message, "param": param}
        if self.flavour == "openai_compatible":
            flat |= {"type": type_ or _VLLM_TYPES.get(status, "BadRequestError"), "code": status}
        else:
            kind = type_ or ("invalid_request_error" if status < 500 else "internal_server_error")
            flat |= {"type": kind, "code": code}
        return JSONResponse(flat, status, headers=headers)

    def unauthorized(self, given: str | None, path: str) -> JSONResponse:
        if self.flavour == "openai_compatible":
            return JSONResponse({"error": "Unauthorized"}, 401)
        if self.flavour == "mistral":
            if path.endswith("/models"):
                return JSONResponse({"detail": "Unauthorized"}, 401)
            return JSONResponse({"message": "Unauthorized", "request_id": uuid.uuid4().hex}, 401)
        if given is None:
            return self.error(
                401,
                "You didn't provide an API key. You need to provide your API "
                "key in an Authorization header using Bearer auth.",
            )
        # The real API masks most of the key; echoing it whole makes redaction testable.
        return self.error(
            401,
            f"Incorrect API key provided: {given}. You can find your API key "
            "at https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )

    def fail(self, step: Fail) -> Response:
        headers = {}
        if step.retry_after is not None:
            headers["Retry-After"] = f"{step.retry_after:g}"
        if step.raw_body is not None:
            return Response(step.raw_body, step.status, headers=headers, media_type="text/plain")
        mistral, openai = self.flavour == "mistral", self.flavour == "openai"
        if step.kind == "context":
            if openai:
                return self.error(
                    step.status, step.message, code="context_length_exceeded", param="messages"
                )
            if mistral:
                return self.error(
                    step.status,
                    "Prompt contains 40001 tokens and 0 draft tokens, "
                    "too large for model with 32768 maximum context length",
                )
            return self.error(
                step.status,
                "This model's maximum context length is 4096 tokens. "
                "However, you requested 5000 tokens.",
            )
        if step.kind == "overloaded":
            if openai:
                return self.error(
                    step.status,
                    step.message,
                    type_="service_unavailable_error",
                    code="server_is_overloaded",
                    headers=headers,
                )
            if mistral:
                return self.error(
                    step.status, "Service tier capacity exceeded for this model.", headers=headers
                )
            return self.error(step.status, f"Server is overloaded: {step.message}", headers=headers)
        if step.status == 429:
            if openai:  # OpenAI always says which limit ran out and when it resets
                headers |= {
                    "x-ratelimit-remaining-requests": "0",
                    "x-ratelimit-reset-requests": f"{step.retry_after or 0.02:g}s",
                }
                return self.error(429, step.message, code="rate_limit_exceeded", headers=headers)
            if mistral:
                return self.error(
                    429, step.message, type_="rate_limited", code="1300", headers=headers
                )
        if step.status == 422 and mistral:
            detail = [{"type": "value_error", "loc": ["body"], "msg": step.message}]
            return JSONResponse({"detail": detail}, 422, headers=headers)
        return self.error(step.status, step.message, headers=headers)

    # --- what the real APIs refuse -----------------------------------------------------

    def reject(self, status: int, message: Any, **fields: Any) -> NoReturn:
        raise _Rejected(self.error(status, message, **fields))

    def validate(self, body: Any) -> None:
        if not isinstance(body, dict):
            self.reject(400, "We could not parse the JSON body of your request.")
        if self.flavour == "mistral":
            problems = [
                (k, "Extra inputs are not permitted")
                for k in sorted(body)
                if k not in _MISTRAL_FIELDS
            ]
            problems += [(k, "Field required") for k in ("model", "messages") if k not in body]
            if problems:
                self.reject(422, {"detail": [{"loc": ["body", k], "msg": m} for k, m in problems]})
        if not body.get("model"):
            self.reject(400, "you must provide a model parameter")
        if not body.get("messages"):
            self.reject(400, "[] is too short - 'messages'", param="messages")
        if self.flavour == "openai" and "max_tokens" in body:
            self.reject(
                400,
                "Unsupported parameter: 'max_tokens' is not supported with this "
                "model. Use 'max_completion_tokens' instead.",
                code="unsupported_parameter",
            )
        if "stream_options" in body and not body.get("stream"):
            self.reject(
                400,
                "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                param="stream_options",
            )
        self.validate_tool_calls(body["messages"])

    def validate_tool_calls(self, messages: list[dict[str, Any]]) -> None:
        called: set[str] = set()
        for i, message in enumerate(messages):
            calls = message.get("tool_calls") or []
            ids = [c.get("id", "") for c in calls]
            if message.get("role") == "tool":
                ids.append(message.get("tool_call_id", ""))
            for call_id in ids:
                if self.flavour == "mistral" and not _MISTRAL_ID.fullmatch(call_id):
                    self.reject(
                        400,
                        f"Tool call id was {call_id} but must be a-z, A-Z, 0-9, "
                        "with a length of 9.",
                        type_="invalid_function_call",
                        code="3280",
                    )
                if self.flavour == "openai" and len(call_id) > 40:
                    self.reject(
                        400,
                        f"Invalid 'messages[{i}].tool_calls.id': string too long. "
                        "Expected a string with maximum length 40.",
                    )
            for call in calls:
                called.add(call.get("id", ""))
                arguments = call.get("function", {}).get("arguments")
                if self.flavour != "mistral" and not isinstance(arguments, str):
                    self.reject(
                        400,
                        f"Invalid type for 'messages[{i}].tool_calls.function"
                        ".arguments': expected a string, but got an object instead.",
                    )
            if message.get("role") == "tool" and message.get("tool_call_id") not in called:
                self.reject(
                    400,
                    "Invalid parameter: messages with role 'tool' must be a response "
                    "to a preceding message with 'tool_calls'.",
                )

    # --- routes ------------------------------------------------------------------------

    def record(self, request: Request, raw: bytes) -> RecordedRequest:
        try:
            body: Any = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = raw.decode(errors="replace")
        recorded = RecordedRequest(request.method, request.url.path, dict(request.headers), body)
        if isinstance(body, dict):
            recorded.model = body.get("model")
            recorded.stream = bool(body.get("stream"))
            recorded.messages = _normalize(body.get("messages") or [])
            recorded.tools = [t.get("function", {}).get("name") for t in body.get("tools") or ()]
            field = "max_completion_tokens" if self.flavour == "openai" else "max_tokens"
            recorded.max_tokens = body.get(field)
        self.script.requests.append(recorded)
        return recorded

    def check_key(self, request: Request) -> None:
        if self.flavour == "openai_compatible" and self.script.api_key is None:
            return
        given = request.headers.get("authorization")
        if given != f"Bearer {self.script.api_key}":
            key = given.removeprefix("Bearer ") if given else None
            raise _Rejected(self.unauthorized(key, request.url.path))

    async def models(self, request: Request) -> Response:
        self.record(request, b"")
        try:
            self.check_key(request)
        except _Rejected as rejected:
            return rejected.response
        owner = "mistralai" if self.flavour == "mistral" else "system"
        data = [
            {"id": m, "object": "model", "created": 1_700_000_000, "owned_by": owner}
            for m in self.script.models
        ]
        return JSONResponse({"object": "list", "data": data})

    async def chat(self, request: Request) -> Response:
        recorded = self.record(request, await request.body())
        try:
            self.check_key(request)
            self.validate(recorded.body)
        except _Rejected as rejected:
            return rejected.response
        step = self.script.next_step(recorded)
        if isinstance(step, Reply) and step.delay_s:
            await asyncio.sleep(step.delay_s)
        if isinstance(step, Fail):
            return self.fail(step)
        if isinstance(step, Malformed) and not recorded.stream:
            return Response("<html>502 Bad Gateway</html>", 200, media_type="application/json")
        if not recorded.stream:
            assert isinstance(step, Reply), f"{type(step).__name__} needs a streaming request"
            return JSONResponse(self.completion(step, recorded))
        ask = recorded.body.get("stream_options") or {}
        usage = self.flavour == "mistral" or (self.stream_usage and ask.get("include_usage"))
        events = self.events(step, recorded, with_usage=bool(usage))
        return StreamingResponse(events, media_type="text/event-stream")

    # --- answers -----------------------------------------------------------------------

    def call_id(self) -> str:
        if self.flavour == "mistral":
            return _alnum(9)
        if self.flavour == "openai_compatible":
            return f"chatcmpl-tool-{uuid.uuid4().hex}"
        return f"call_{_alnum(24)}"

    def envelope(self, recorded: RecordedRequest, obj: str, **fields: Any) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": obj,
            "created": int(time.time()),
            "model": recorded.model,
            **fields,
        }

    @staticmethod
    def usage(reply: Reply) -> dict[str, int]:
        return {
            "prompt_tokens": reply.input_tokens,
            "completion_tokens": reply.output_tokens,
            "total_tokens": reply.input_tokens + reply.output_tokens,
        }

    def completion(self, reply: Reply, recorded: RecordedRequest) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": c.id or self.call_id(),
                    "type": "function",
                    "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                }
                for c in reply.tool_calls
            ]
        choice = {"index": 0, "message": message, "finish_reason": reply.finish_reason}
        return self.envelope(recorded, "chat.completion", choices=[choice], usage=self.usage(reply))

    async def events(
        self,
        step: Reply | CutStream | StreamError | Malformed,
        recorded: RecordedRequest,
        *,
        with_usage: bool,
    ) -> AsyncIterator[str]:
        reply = step if isinstance(step, Reply) else getattr(step, "reply", _MALFORMED_TEXT)
        pieces = split_text(reply.text)
        if not isinstance(step, Reply):
            pieces = pieces[: step.after_chunks]
        openai_usage = with_usage and self.flavour != "mistral"

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            fields: dict[str, Any] = {"choices": [choice]}
            if openai_usage:
                fields["usage"] = None  # OpenAI's chunks carry "usage": null until the last
            body = self.envelope(recorded, "chat.completion.chunk", **fields) | extra
            return f"data: {json.dumps(body)}\n\n"

        yield chunk({"role": "assistant", "content": ""})
        for piece in pieces:
            if reply.chunk_delay_s:
                await asyncio.sleep(reply.chunk_delay_s)
            yield chunk({"content": piece})
        if isinstance(step, CutStream):
            return
        if isinstance(step, StreamError):
            yield f"data: {json.dumps(self.stream_error(step))}\n\n"
            return
        if isinstance(step, Malformed):
            yield 'data: {"choices": [{"delta": {"content": "cut here\n\n'
            yield "data: [DONE]\n\n"
            return
        calls = [(c.id or self.call_id(), c) for c in reply.tool_calls]
        if self.flavour == "mistral":  # whole tool calls, finish and usage in the last chunk
            parts = [
                {
                    "id": i,
                    "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                    "index": n,
                }
                for n, (i, c) in enumerate(calls)
            ]
            delta = {"content": ""} | ({"tool_calls": parts} if parts else {})
            yield chunk(delta, reply.finish_reason, usage=self.usage(reply))
        else:
            for n, (call_id, call) in enumerate(calls):
                head = {
                    "index": n,
                    "id": call_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": ""},
                }
                yield chunk({"tool_calls": [head]})
                for fragment in split_text(json.dumps(call.arguments), 4):
                    yield chunk({"tool_calls": [{"index": n, "function": {"arguments": fragment}}]})
            yield chunk({}, reply.finish_reason)
            if openai_usage:
                last = self.envelope(
                    recorded, "chat.completion.chunk", choices=[], usage=self.usage(reply)
                )
                yield f"data: {json.dumps(last)}\n\n"
        yield "data: [DONE]\n\n"

    def stream_error(self, step: StreamError) -> dict[str, Any]:
        overloaded = step.kind == "overloaded"
        if self.flavour == "openai":
            kind = "service_unavailable_error" if overloaded else "server_error"
            code = "server_is_overloaded" if overloaded else None
            return {"error": {"message": step.message, "type": kind, "param": None, "code": code}}
        if self.flavour == "mistral":
            text = "Service tier capacity exceeded for this model." if overloaded else step.message
            return {
                "object": "error",
                "message": text,
                "type": "internal_server_error",
                "param": None,
                "code": None,
            }
        text = f"Server is overloaded: {step.message}" if overloaded else step.message
        return {
            "object": "error",
            "message": text,
            "type": "InternalServerError",
            "param": None,
            "code": 503 if overloaded else 500,
        }


def make_app(
    script: Script, *, flavour: Flavour = "openai", stream_usage: bool = True
) -> Starlette:
    """The fake as an ASGI app; ``stream_usage=False`` makes a server that never sends usage."""
    fake = _Fake(script, flavour, stream_usage)
    return Starlette(
        routes=[
            Route("/v1/chat/completions", fake.chat, methods=["POST"]),
            Route("/v1/models", fake.models, methods=["GET"]),
        ]
    )
