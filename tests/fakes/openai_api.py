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
result that matches no earlier tool call with a 400, as the real APIs do. The error bodies
and the request checks live in ``openai_errors``; this module records requests and renders
answers and streams.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import string
import time
import uuid
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
    StreamError,
    split_text,
)
from tests.fakes.openai_errors import (
    Flavour,
    Rejected,
    check_request,
    failure,
    stream_error,
    unauthorized,
)

_MALFORMED_TEXT = Reply(text="this answer carries a chunk that is not JSON")


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
            raise Rejected(unauthorized(self.flavour, key, request.url.path))

    async def models(self, request: Request) -> Response:
        self.record(request, b"")
        try:
            self.check_key(request)
        except Rejected as rejected:
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
            check_request(self.flavour, recorded.body)
        except Rejected as rejected:
            return rejected.response
        step = self.script.next_step(recorded)
        if isinstance(step, Reply) and step.delay_s:
            await asyncio.sleep(step.delay_s)
        if isinstance(step, Fail):
            return failure(self.flavour, step)
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
            yield f"data: {json.dumps(stream_error(self.flavour, step))}\n\n"
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
