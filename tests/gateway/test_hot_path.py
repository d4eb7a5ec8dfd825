"""The plain-ASGI chat/multi path: streams stop reading the provider when the client leaves."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.types import Message

from core.errors import ProviderUnavailable
from core.providers.manager import OpenedStream
from core.types import ChatRequest, StreamDone, StreamEvent, TextDelta
from gateway.api.hot_path import HotPathMiddleware
from tests.gateway.conftest import app_client

BODY = json.dumps({"messages": [{"role": "user", "content": "hi"}], "stream": True}).encode()


class StreamingManager:
    """Yields ``count`` deltas then done, recording how far the consumer read."""

    def __init__(self, count: int, *, fail_before_first: bool = False) -> None:
        self.count = count
        self.yielded = 0
        self.closed = asyncio.Event()
        self.fail_before_first = fail_before_first

    async def stream(
        self, request: ChatRequest, *, provider: str | None
    ) -> AsyncIterator[StreamEvent]:
        if self.fail_before_first:
            raise ProviderUnavailable("every provider failed", provider="p")
        try:
            for index in range(self.count):
                self.yielded += 1
                yield TextDelta(text=f"w{index} ")
                await asyncio.sleep(0.01)
            yield StreamDone(provider="p", model="m")
        finally:
            self.closed.set()

    async def open_stream(self, request: ChatRequest, *, provider: str | None) -> OpenedStream:
        events = self.stream(request, provider=provider)
        first = await anext(events)
        return OpenedStream(first=first, events=events, provider="p", model="m")


class Runtime:
    def __init__(self, manager: StreamingManager) -> None:
        self.manager = manager


async def not_found_app(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("the hot path should have answered")


async def run(manager: StreamingManager, *, leave_after: int | None) -> list[Message]:
    sent: list[Message] = []
    left = asyncio.Event()
    body_given = False

    async def receive() -> Message:
        nonlocal body_given
        if not body_given:
            body_given = True
            return {"type": "http.request", "body": BODY, "more_body": False}
        await left.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)
        chunks = [m for m in sent if m["type"] == "http.response.body"]
        if leave_after is not None and len(chunks) >= leave_after:
            left.set()

    middleware = HotPathMiddleware(not_found_app, runtime_source=lambda: Runtime(manager))  # type: ignore[arg-type, return-value]
    scope = {"type": "http", "path": "/api/chat/multi", "method": "POST", "headers": []}
    await asyncio.wait_for(middleware(scope, receive, send), timeout=10)
    return sent


async def test_a_whole_stream_is_sent_as_server_sent_events() -> None:
    manager = StreamingManager(5)
    sent = await run(manager, leave_after=None)
    assert sent[0]["status"] == 200
    assert (b"content-type", b"text/event-stream; charset=utf-8") in sent[0]["headers"]
    text = b"".join(m.get("body", b"") for m in sent[1:]).decode()
    assert text.count("event: delta") == 5 and text.rstrip().endswith(
        '"usage":{"input_tokens":0,"output_tokens":0,"total_tokens":0}}'
    )
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    assert manager.closed.is_set()


async def test_a_client_that_leaves_stops_the_provider_stream() -> None:
    manager = StreamingManager(1000)
    await run(manager, leave_after=2)
    assert manager.closed.is_set()  # the provider stream was closed, not left hanging
    assert manager.yielded < 10  # and not read to its end


async def test_a_stream_that_cannot_start_answers_a_json_error() -> None:
    sent = await run(StreamingManager(3, fail_before_first=True), leave_after=None)
    assert sent[0]["status"] == 503
    error = json.loads(sent[1]["body"])["error"]
    assert error["code"] == "provider_unavailable"


async def test_a_stream_for_an_unknown_provider_is_a_404(workspace: Path) -> None:
    async with app_client(workspace) as api:
        answer = await api.post(
            "/api/chat/multi",
            json={
                "messages": [{"role": "user", "content": "hi"}],
                "stream": True,
                "provider": "nope",
            },
        )
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "provider_not_found"
