"""What is specific to OpenAI-compatible servers (vLLM, LM Studio, OpenRouter ...), over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.errors import ContextTooLong, ProviderAuthError, ProviderBadRequest
from core.providers.openai_compatible import OpenAICompatibleProvider
from core.types import ChatMessage, ChatRequest, Role, StreamDone, StreamEvent, TextDelta, ToolCall
from tests.core.providers.case_openai_compatible import CASE
from tests.core.providers.cases import Running, running
from tests.fakes.llm_script import Fail, Reply, Script
from tests.fakes.openai_api import make_app
from tests.fakes.server import serve_app


def ask(text: str, **kwargs: object) -> ChatRequest:
    return ChatRequest(messages=(ChatMessage(role=Role.USER, content=text),), **kwargs)


async def collect(stream: AsyncIterator[StreamEvent]) -> list[StreamEvent]:
    return [event async for event in stream]


@pytest.fixture
async def live() -> AsyncIterator[Running]:
    async with running(CASE) as rig:
        yield rig


async def test_max_tokens_is_the_field_sent_and_streams_ask_for_usage(live: Running) -> None:
    await live.provider.chat(ask("hi", max_tokens=7))
    await collect(live.provider.stream(ask("hi")))
    plain, streamed = (r.body for r in live.script.chat_requests)
    assert plain["max_tokens"] == 7 and "max_completion_tokens" not in plain
    assert "stream_options" not in plain
    assert streamed["stream_options"] == {"include_usage": True}


async def test_configured_headers_go_on_every_request(live: Running) -> None:
    await live.provider.chat(ask("hi"))
    await live.provider.list_models()
    assert [r.headers.get("x-title") for r in live.script.requests] == ["switchboard-tests"] * 2
    assert all(r.headers["authorization"] == "Bearer test-key" for r in live.script.requests)


async def test_without_a_key_no_authorization_header_is_sent() -> None:
    script = Script(api_key=None)
    app = make_app(script, flavour="openai_compatible")
    async with serve_app(app) as base_url, httpx.AsyncClient() as client:
        provider = OpenAICompatibleProvider(CASE.options(base_url, api_key=None), client)
        assert (await provider.chat(ask("local?"))).content == "fake[fake-small]: local?"
        assert (await provider.health_check()).healthy
    assert all("authorization" not in r.headers for r in script.requests)


async def test_a_stream_without_usage_reports_zeros_rather_than_failing() -> None:
    script = Script()
    script.push(Reply(text="no usage from this server"))
    app = make_app(script, flavour="openai_compatible", stream_usage=False)
    async with serve_app(app) as base_url, httpx.AsyncClient() as client:
        provider = OpenAICompatibleProvider(CASE.options(base_url), client)
        events = await collect(provider.stream(ask("hi")))
    assert (
        "".join(e.text for e in events if isinstance(e, TextDelta)) == "no usage from this server"
    )
    done = events[-1]
    assert isinstance(done, StreamDone)
    assert (done.usage.input_tokens, done.usage.output_tokens) == (0, 0)


async def test_foreign_tool_call_ids_pass_unchanged(live: Running) -> None:
    call = ToolCall(id="toolu_01A09q90qw90lq917835lq9", name="get_weather")
    await live.provider.chat(
        ChatRequest(
            messages=(
                ChatMessage(role=Role.USER, content="weather?"),
                ChatMessage(role=Role.ASSISTANT, tool_calls=(call,)),
                ChatMessage(role=Role.TOOL, tool_call_id=call.id, content="rain"),
            )
        )
    )
    _, assistant, tool = live.script.chat_requests[0].body["messages"]
    assert assistant["tool_calls"][0]["id"] == tool["tool_call_id"] == call.id


async def test_vllm_error_shapes_are_understood(live: Running) -> None:
    wrong = CASE.factory(CASE.options(live.base_url, api_key="nope"), live.client)
    with pytest.raises(ProviderAuthError, match="Unauthorized"):  # {"error": "Unauthorized"}
        await wrong.chat(ask("hi"))
    live.script.push(Fail(400, "temperature must be non-negative"))
    with pytest.raises(ProviderBadRequest, match="temperature must be non-negative"):
        await live.provider.chat(ask("hi"))
    live.script.push(Fail(400, kind="context"))  # no machine code: the text decides
    with pytest.raises(ContextTooLong):
        await live.provider.chat(ask("hi"))


async def test_odd_but_seen_answers_are_accepted() -> None:
    # A bare array from /models, typed content parts, and "stop" while asking for a tool.
    async def models(request: Request) -> Response:
        return JSONResponse([{"id": "local-model"}])

    async def chat(request: Request) -> Response:
        message = {
            "content": [{"type": "text", "text": "Let me look."}],
            "tool_calls": [{"function": {"name": "get_weather", "arguments": ""}}],
        }
        return JSONResponse({"choices": [{"message": message, "finish_reason": "stop"}]})

    app = Starlette(
        routes=[
            Route("/v1/models", models),
            Route("/v1/chat/completions", chat, methods=["POST"]),
        ]
    )
    async with serve_app(app) as base_url, httpx.AsyncClient() as client:
        provider = OpenAICompatibleProvider(CASE.options(base_url, api_key=None), client)
        assert await provider.list_models() == ["local-model"]
        result = await provider.chat(ask("weather?"))
    assert result.content == "Let me look."
    (call,) = result.tool_calls
    assert call.id.startswith("call_") and call.arguments == {}
    assert result.finish_reason == "tool_calls"
    assert (result.usage.input_tokens, result.usage.output_tokens) == (0, 0)
