"""The hot route served as plain ASGI: ``POST /api/chat/multi``, answers and streams.

Profiling the gateway at saturation showed a third of its CPU in Starlette's and FastAPI's
per-request machinery (routing, two exception-wrapping layers, the endpoint runner and
dependency solving) around an endpoint that needs none of it: parse one body, call the
provider manager, write one JSON answer. This middleware answers that one request shape
directly, with the same validation, error shape and answer as the FastAPI route (which
stays the documented one in OpenAPI). Streams too: Starlette's streaming response runs a
task group per request to notice a client that goes away; here one task waits for the
disconnect and the loop checks it between events. It sits inside the admin-token
middleware, so authentication is already done.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from core.errors import SwitchboardError
from core.providers.guarded import aclose
from gateway.api.disconnect import unless_disconnected
from gateway.api.errors import error_response, switchboard_error_response, validation_error_response
from gateway.api.routes.chat_multi import (
    ChatMultiBody,
    _dumps,
    answer_json,
    sse_event,
    to_chat_request,
)

if TYPE_CHECKING:
    from gateway.runtime import Runtime

log = logging.getLogger("switchboard.api")

HOT_PATH = "/api/chat/multi"
# A conversation of 1,000 messages of 32,000 characters is about 32 MB; beyond that the
# request is refused before it is read further.
MAX_BODY_BYTES = 64 * 1024 * 1024
_JSON_HEADERS = [(b"content-type", b"application/json")]
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
_INTERNAL_ERROR = (
    b"event: error\ndata: "
    + _dumps({"code": "internal_error", "message": "internal error: the gateway log has details"})
    + b"\n\n"
)


class HotPathMiddleware:
    """Serves non-streaming chat/multi requests itself; passes everything else on."""

    def __init__(self, app: ASGIApp, *, runtime_source: Callable[[], Runtime | None]) -> None:
        self._app = app
        self._runtime = runtime_source

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime = self._runtime()
        if (
            runtime is None
            or scope["type"] != "http"
            or scope["path"] != HOT_PATH
            or scope["method"] != "POST"
        ):
            await self._app(scope, receive, send)
            return
        raw = await read_body(receive)
        if raw is None:
            await error_response(413, "payload_too_large", "the body is too large")(
                scope, receive, send
            )
            return
        try:
            body = ChatMultiBody.model_validate_json(raw)
        except ValidationError as exc:
            await validation_error_response(list(exc.errors(include_url=False)))(
                scope, receive, send
            )
            return
        if body.stream:
            await _stream(runtime, body, scope, receive, send)
            return
        try:
            result = await runtime.manager.chat(to_chat_request(body), provider=body.provider)
        except SwitchboardError as exc:
            await switchboard_error_response(exc)(scope, receive, send)
            return
        except Exception:  # the same last resort as the app's own handler: a bug, logged
            await _internal_error(scope, receive, send)
            return
        payload = _dumps(answer_json(result))
        headers = [*_JSON_HEADERS, (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


async def read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None when it is over ``MAX_BODY_BYTES``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)  # disconnected: the parse fails and says so
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _internal_error(scope: Scope, receive: Receive, send: Send) -> None:
    log.exception("event=unhandled_error path=%s", HOT_PATH)
    response = error_response(500, "internal_error", "internal error: the gateway log has details")
    await response(scope, receive, send)


async def _stream(
    runtime: Runtime, body: ChatMultiBody, scope: Scope, receive: Receive, send: Send
) -> None:
    """Server-sent events; errors before the first event answer JSON with their status."""
    try:
        # open_stream rather than stream(): one generator layer less for every event.
        opened = await runtime.manager.open_stream(to_chat_request(body), provider=body.provider)
    except SwitchboardError as exc:  # an unknown provider is refused here too
        await switchboard_error_response(exc)(scope, receive, send)
        return
    except Exception:
        await _internal_error(scope, receive, send)
        return
    first, events = opened.first, opened.events
    try:

        async def relay() -> None:
            await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
            await send({"type": "http.response.body", "body": sse_event(first), "more_body": True})
            try:
                async for event in events:
                    chunk = sse_event(event)
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except Exception:
                # Headers are out: end the stream with an error event, never truncate silently.
                log.exception("event=unhandled_error path=%s", HOT_PATH)
                await send(
                    {"type": "http.response.body", "body": _INTERNAL_ERROR, "more_body": True}
                )
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        await unless_disconnected(receive, relay)  # a client that left stops the provider
    finally:
        await aclose(events)
