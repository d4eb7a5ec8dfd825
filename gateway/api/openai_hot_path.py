"""``POST /v1/chat/completions`` served as plain ASGI, streams included.

Like ``gateway.api.hot_path`` (see its doc for the profile that motivated it), the
middleware answers this one route without FastAPI's per-request machinery: one
``model_validate_json`` pass over the body, one call to the provider manager, and for a
stream each event forwarded the moment it arrives, encoded into a chunk whose envelope
was encoded once. The FastAPI route of the same path (documented in OpenAPI) hands its
body to the same :class:`OpenAIChatService`, so both answer identically.

A stream falls back to the next provider only before its first event
(``ProviderManager.open_stream``, which also says who answers, so that every chunk names
the provider and model that actually answer). A failure before the first event is an
HTTP error in OpenAI's shape; after it, a ``data: {"error": ...}`` event ends the stream
(the SDKs raise on it). When the client goes away, the upstream stream is closed at once
(``gateway.api.disconnect``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from pydantic import ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from core.errors import SwitchboardError
from core.providers.guarded import aclose
from core.providers.manager import ProviderManager
from core.types import StreamDone, StreamEvent, StreamFailed, TextDelta, ToolCallEvent
from gateway.api.disconnect import unless_disconnected
from gateway.api.hot_path import MAX_BODY_BYTES, read_body
from gateway.api.openai_render import (
    DONE,
    JSON_HEADERS,
    SSE_HEADERS,
    AbnormalFinish,
    ChunkWriter,
    completion_body,
    completion_ids,
    error_body,
    stream_error_frame,
    switchboard_error,
)
from gateway.api.openai_routing import ModelRouter
from gateway.api.openai_wire import ChatCompletionBody, invalid_body, to_chat_request

if TYPE_CHECKING:
    from gateway.runtime import Runtime

log = logging.getLogger("switchboard.api")

CHAT_COMPLETIONS = "/v1/chat/completions"


async def _respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, exc: SwitchboardError) -> None:
    """One of our errors in OpenAI's shape."""
    await _respond(send, *switchboard_error(exc))


async def _internal_error(send: Send) -> None:
    log.exception("event=unhandled_error path=%s", CHAT_COMPLETIONS)
    body = error_body(
        "internal error: the gateway log has details", status=500, code="internal_error"
    )
    await _respond(send, 500, JSON_HEADERS, body)


class OpenAIChatService:
    """Answers Chat Completions requests over the provider manager."""

    def __init__(
        self,
        *,
        router: ModelRouter | None = None,
        new_id: Callable[[], str] | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.router = router or ModelRouter()
        self._new_id = new_id or completion_ids()
        self._wall_clock = wall_clock

    async def serve(
        self, manager: ProviderManager, raw: bytes, receive: Receive, send: Send
    ) -> None:
        """Answer the request whose body is ``raw``: JSON, or server-sent events."""
        try:
            body = ChatCompletionBody.model_validate_json(raw)
        except ValidationError as exc:
            await send_error(send, invalid_body(exc))
            return
        try:
            route = await self.router.resolve(manager, body.model)
            request = to_chat_request(body, model=route.model)
            if body.stream:
                opened = await manager.open_stream(request, provider=route.provider)
            else:
                result = await manager.chat(request, provider=route.provider)
                payload = completion_body(
                    result, completion_id=self._new_id(), created=int(self._wall_clock())
                )
        except SwitchboardError as exc:
            await send_error(send, exc)
            return
        except Exception:  # the last resort, as the app's own handler: a bug, logged
            await _internal_error(send)
            return
        if not body.stream:
            await _respond(send, 200, JSON_HEADERS, payload)
            return
        writer = ChunkWriter(
            completion_id=self._new_id(),
            created=int(self._wall_clock()),
            model=f"{opened.provider}/{opened.model}",
            usage=body.include_usage,
        )
        await self._relay(opened.first, opened.events, writer=writer, receive=receive, send=send)

    async def _relay(
        self,
        first: StreamEvent,
        events: AsyncIterator[StreamEvent],
        *,
        writer: ChunkWriter,
        receive: Receive,
        send: Send,
    ) -> None:
        async def stream() -> None:
            await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
            await self._forward(first, events, writer=writer, send=send)

        try:
            if await unless_disconnected(receive, stream):
                log.info("event=stream_abandoned api=openai detail=client_disconnected")
        finally:
            await aclose(events)

    @staticmethod
    async def _forward(
        first: StreamEvent, events: AsyncIterator[StreamEvent], *, writer: ChunkWriter, send: Send
    ) -> None:
        pending = writer.role()  # written together with the first event's chunk
        event: StreamEvent | None = first
        try:
            while event is not None:
                frame, last = _encode(event, writer)
                if pending:
                    frame, pending = pending + frame, b""
                if last:
                    await send({"type": "http.response.body", "body": frame})
                    return
                if frame:
                    await send({"type": "http.response.body", "body": frame, "more_body": True})
                event = await anext(events, None)
            frame = stream_error_frame(
                code="provider_stream_broken", message="the stream ended without its end event"
            )
        except SwitchboardError as exc:
            frame = stream_error_frame(code=exc.code, message=exc.message)
        except Exception:  # a bug mid-stream: logged, and the client still learns of it
            log.exception("event=unhandled_error path=%s stream=true", CHAT_COMPLETIONS)
            frame = stream_error_frame(
                code="internal_error", message="internal error: the gateway log has details"
            )
        await send({"type": "http.response.body", "body": pending + frame})


def _encode(event: StreamEvent, writer: ChunkWriter) -> tuple[bytes, bool]:
    """The frame(s) of one event, and whether the stream ends with them."""
    if isinstance(event, TextDelta):
        return (writer.text(event.text) if event.text else b""), False
    if isinstance(event, ToolCallEvent):
        return writer.tool_call(event.tool_call), False
    if isinstance(event, StreamDone):
        if event.finish_reason == "error":
            failure = AbnormalFinish(event.provider)
            return stream_error_frame(code=failure.code, message=failure.message), True
        tail = writer.usage(event.usage) + DONE if writer.with_usage else DONE
        return writer.finish(event.finish_reason) + tail, True
    failed: StreamFailed = event
    return stream_error_frame(code=failed.code, message=failed.message), True


class OpenAIHotPathMiddleware:
    """Serves ``POST /v1/chat/completions`` itself; passes everything else on.

    It sits inside the admin-token middleware, so authentication is already done.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        service: OpenAIChatService,
        runtime_source: Callable[[], Runtime | None],
    ) -> None:
        self._app = app
        self._service = service
        self._runtime = runtime_source

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != CHAT_COMPLETIONS:
            await self._app(scope, receive, send)
            return
        runtime = self._runtime()
        if runtime is None or scope["method"] != "POST":
            await self._app(scope, receive, send)
            return
        raw = await read_body(receive)
        if raw is None:
            body = error_body(
                f"the request body is over {MAX_BODY_BYTES // (1024 * 1024)} MB",
                status=413,
                code="payload_too_large",
            )
            await _respond(send, 413, JSON_HEADERS, body)
            return
        await self._service.serve(runtime.manager, raw, receive, send)
