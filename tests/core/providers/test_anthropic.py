"""What is specific to Anthropic's Messages API, over loopback HTTP against the fakes."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.errors import (
    ContextTooLong,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderOverloaded,
    ProviderRateLimited,
    ProviderServerError,
    ProviderStreamBroken,
)
from core.providers.anthropic import API_VERSION, AnthropicProvider, wire_tool_id
from core.providers.base import ProviderOptions
from core.types import (
    ChatMessage,
    ChatRequest,
    Role,
    StreamDone,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    ToolSpec,
)
from tests.core.providers.case_anthropic import CASE
from tests.core.providers.cases import Running, running
from tests.fakes.llm_script import Fail, FakeToolCall, Reply, StreamError
from tests.fakes.server import serve_app

WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather of a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)
TOOL_ID = re.compile(r"[a-zA-Z0-9_-]+")


def msg(role: Role, content: str = "", **kwargs: Any) -> ChatMessage:
    return ChatMessage(role=role, content=content, **kwargs)


async def collect(stream: AsyncIterator[StreamEvent]) -> list[StreamEvent]:
    return [event async for event in stream]


@pytest.fixture
async def live() -> AsyncIterator[Running]:
    async with running(CASE) as rig:
        yield rig


def sent_body(live: Running, index: int = 0) -> dict[str, Any]:
    body: dict[str, Any] = live.script.chat_requests[index].body
    return body


# --- the request on the wire -------------------------------------------------------------------


async def test_system_goes_top_level_and_max_tokens_is_always_sent(live: Running) -> None:
    request = ChatRequest(
        messages=(
            msg(Role.SYSTEM, "Be brief."),
            msg(Role.USER, "hello"),
            msg(Role.SYSTEM, "Answer in French."),
        ),
        tools=(WEATHER,),
        temperature=0.2,
    )
    await live.provider.chat(request)
    assert sent_body(live) == {
        "model": "fake-small",
        "max_tokens": 4096,
        "system": "Be brief.\n\nAnswer in French.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}],
        "tools": [
            {
                "name": "get_weather",
                "description": "Current weather of a city",
                "input_schema": WEATHER.parameters,
            }
        ],
        "temperature": 0.2,
    }


async def test_request_max_tokens_wins_and_streams_say_so(live: Running) -> None:
    await collect(live.provider.stream(ChatRequest(messages=(msg(Role.USER, "hi"),), max_tokens=9)))
    body = sent_body(live)
    assert (body["max_tokens"], body["stream"]) == (9, True)
    assert "system" not in body and "tools" not in body


async def test_the_default_max_tokens_comes_from_the_options() -> None:
    async with running(CASE, default_max_tokens=123) as rig:
        await rig.provider.chat(ChatRequest(messages=(msg(Role.USER, "hi"),)))
        assert sent_body(rig)["max_tokens"] == 123


async def test_headers_carry_key_version_json_and_extra_headers() -> None:
    async with running(CASE, headers={"anthropic-beta": "tools-2099"}) as rig:
        await rig.provider.chat(ChatRequest(messages=(msg(Role.USER, "hi"),)))
        headers = rig.script.chat_requests[0].headers
    assert headers["x-api-key"] == "test-key"
    assert headers["anthropic-version"] == API_VERSION == "2023-06-01"
    assert headers["content-type"] == "application/json"
    assert headers["anthropic-beta"] == "tools-2099"
    assert "authorization" not in headers


async def test_turns_alternate_and_tool_results_share_one_user_turn(live: Running) -> None:
    calls = (
        ToolCall(id="toolu_a", name="get_weather", arguments={"city": "Oslo"}),
        ToolCall(id="toolu_b", name="get_weather", arguments={"city": "Lima"}),
    )
    request = ChatRequest(
        messages=(
            msg(Role.USER, "weather in Oslo?"),
            msg(Role.USER, "and Lima?"),
            msg(Role.ASSISTANT, "Let me look.", tool_calls=calls),
            msg(Role.TOOL, "snow", tool_call_id="toolu_a", name="get_weather"),
            msg(Role.TOOL, "sun", tool_call_id="toolu_b"),
            msg(Role.USER, "thanks"),
        ),
        tools=(WEATHER,),
    )
    await live.provider.chat(request)
    assert sent_body(live)["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "weather in Oslo?"},
                {"type": "text", "text": "and Lima?"},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look."},
                {
                    "type": "tool_use",
                    "id": "toolu_a",
                    "name": "get_weather",
                    "input": {"city": "Oslo"},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_b",
                    "name": "get_weather",
                    "input": {"city": "Lima"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": "snow"},
                {"type": "tool_result", "tool_use_id": "toolu_b", "content": "sun"},
                {"type": "text", "text": "thanks"},
            ],
        },
    ]


async def test_a_tool_result_without_an_id_answers_the_open_call_of_its_name(
    live: Running,
) -> None:
    call = ToolCall(id="toolu_x", name="get_weather", arguments={"city": "Rome"})
    request = ChatRequest(
        messages=(
            msg(Role.USER, "weather?"),
            msg(Role.ASSISTANT, tool_calls=(call,)),
            msg(Role.TOOL, "rain", name="get_weather"),
        )
    )
    await live.provider.chat(request)
    result = sent_body(live)["messages"][2]["content"][0]
    assert result == {"type": "tool_result", "tool_use_id": "toolu_x", "content": "rain"}


async def test_a_tool_result_that_answers_nothing_is_a_bad_request(live: Running) -> None:
    orphan = ChatRequest(messages=(msg(Role.USER, "hi"), msg(Role.TOOL, "rain", name="nope")))
    with pytest.raises(ProviderBadRequest, match="answers no tool call"):
        await live.provider.chat(orphan)
    assert live.script.requests == []


@pytest.mark.parametrize(
    "foreign",
    ["call:abc.def/ghi", "functions.get_weather:0", "call_1\n", "id with spaces", "ü"],
)
async def test_foreign_tool_ids_are_mapped_the_same_way_on_both_sides(
    live: Running, foreign: str
) -> None:
    call = ToolCall(id=foreign, name="get_weather", arguments={"city": "Rome"})
    request = ChatRequest(
        messages=(
            msg(Role.USER, "weather in Rome?"),
            msg(Role.ASSISTANT, tool_calls=(call,)),
            msg(Role.TOOL, "rain", tool_call_id=foreign),
        ),
        tools=(WEATHER,),
    )
    live.script.push(Reply(text="Take an umbrella."))
    assert (await live.provider.chat(request)).content == "Take an umbrella."
    turns = sent_body(live)["messages"]
    used, answered = turns[1]["content"][0]["id"], turns[2]["content"][0]["tool_use_id"]
    assert used == answered == wire_tool_id(foreign)
    assert TOOL_ID.fullmatch(used) and used != foreign


def test_tool_id_mapping_keeps_valid_ids_and_never_merges_two_ids() -> None:
    assert wire_tool_id("toolu_01A09q90qw90lq917835lq9") == "toolu_01A09q90qw90lq917835lq9"
    assert wire_tool_id("call_AbC-123") == "call_AbC-123"
    assert wire_tool_id("a.b") != wire_tool_id("a:b")  # both would read "a_b"
    assert wire_tool_id("a.b") == wire_tool_id("a.b")
    assert TOOL_ID.fullmatch(wire_tool_id(""))
    assert len(wire_tool_id("x." * 200)) <= 64


# --- answers ---------------------------------------------------------------------------------


async def test_parallel_tool_calls_in_a_stream_are_assembled_per_block(live: Running) -> None:
    live.script.push(
        Reply(
            text="Checking both.",
            tool_calls=(
                FakeToolCall("get_weather", {"city": "Oslo", "days": 2}, id="toolu_1"),
                FakeToolCall("get_weather", {"city": "Lima"}, id="toolu_2"),
            ),
        )
    )
    events = await collect(live.provider.stream(ChatRequest(messages=(msg(Role.USER, "w?"),))))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Checking both."
    calls = [e.tool_call for e in events if isinstance(e, ToolCallEvent)]
    assert [(c.id, c.arguments) for c in calls] == [
        ("toolu_1", {"city": "Oslo", "days": 2}),
        ("toolu_2", {"city": "Lima"}),
    ]
    assert isinstance(events[-1], StreamDone) and events[-1].finish_reason == "tool_calls"


async def test_ping_events_are_ignored(live: Running) -> None:
    # The fake sends a ping before the first delta, like the API does.
    events = await collect(live.provider.stream(ChatRequest(messages=(msg(Role.USER, "hi"),))))
    assert all(isinstance(e, TextDelta) for e in events[:-1])
    assert isinstance(events[-1], StreamDone)


async def test_models_are_listed_across_pages(live: Running) -> None:
    live.script.models = [f"claude-{i:04d}" for i in range(2345)]
    assert await live.provider.list_models() == live.script.models
    pages = [r for r in live.script.requests if r.path == "/v1/models"]
    assert len(pages) == 3
    assert all(r.headers["anthropic-version"] == API_VERSION for r in pages)


# --- errors ----------------------------------------------------------------------------------


async def test_529_overloaded_is_overloaded(live: Running) -> None:
    live.script.push(Fail(529, "Overloaded"))
    with pytest.raises(ProviderOverloaded, match="Overloaded"):
        await live.provider.chat(ChatRequest(messages=(msg(Role.USER, "hi"),)))


async def test_429_carries_retry_after(live: Running) -> None:
    live.script.push(
        Fail(429, "Number of request tokens has exceeded your rate limit", retry_after=7)
    )
    with pytest.raises(ProviderRateLimited) as info:
        await live.provider.chat(ChatRequest(messages=(msg(Role.USER, "hi"),)))
    assert info.value.retry_after == 7.0


@pytest.mark.parametrize(
    ("step", "error"),
    [
        (Fail(400, "prompt is too long: 208656 tokens > 200000 maximum"), ContextTooLong),
        (
            Fail(400, "input length and `max_tokens` exceed context limit: 197000 + 8192 > 200000"),
            ContextTooLong,
        ),
        (Fail(413, "Request exceeds the maximum allowed number of bytes."), ContextTooLong),
        (
            Fail(
                400,
                "max_tokens: 10000 > 4096, which is the maximum allowed number of output tokens",
            ),
            ProviderBadRequest,
        ),
        (Fail(502, raw_body="<html>Bad gateway</html>"), ProviderServerError),
    ],
    ids=["prompt-too-long", "input-plus-max-tokens", "413", "max-tokens-too-big", "html-502"],
)
async def test_error_bodies_are_classified(
    live: Running, step: Fail, error: type[Exception]
) -> None:
    live.script.push(step)
    with pytest.raises(error) as info:
        await live.provider.chat(ChatRequest(messages=(msg(Role.USER, "hi"),)))
    assert type(info.value) is error


async def test_the_key_never_shows_in_errors_or_repr(live: Running) -> None:
    secret = "sk-ant-very-secret"
    wrong = AnthropicProvider(CASE.options(live.base_url, api_key=secret), live.client)
    with pytest.raises(ProviderAuthError) as info:
        await wrong.chat(ChatRequest(messages=(msg(Role.USER, "hi"),)))
    health = await wrong.health_check()
    assert secret not in str(info.value) and secret not in (health.error or "")
    assert secret not in repr(wrong) and secret not in repr(wrong._options)


async def test_an_overload_before_any_token_is_overloaded(live: Running) -> None:
    live.script.push(StreamError(after_chunks=0, kind="overloaded", message="Overloaded"))
    seen: list[StreamEvent] = []
    with pytest.raises(ProviderOverloaded):
        async for event in live.provider.stream(ChatRequest(messages=(msg(Role.USER, "hi"),))):
            seen.append(event)
    assert seen == []


async def test_an_error_event_after_tokens_breaks_the_stream(live: Running) -> None:
    live.script.push(StreamError(after_chunks=2))
    seen: list[StreamEvent] = []
    with pytest.raises(ProviderStreamBroken, match="api_error"):
        async for event in live.provider.stream(ChatRequest(messages=(msg(Role.USER, "hi"),))):
            seen.append(event)
    assert len(seen) == 2 and all(isinstance(e, TextDelta) for e in seen)


# --- what only a hand-written answer shows ---------------------------------------------------


@asynccontextmanager
async def answering(body: str, *, media_type: str) -> AsyncIterator[AnthropicProvider]:
    """A provider whose API answers every POST /v1/messages with exactly ``body``."""

    async def messages(request: Request) -> Response:
        return Response(body, media_type=media_type)

    app = Starlette(routes=[Route("/v1/messages", messages, methods=["POST"])])
    async with serve_app(app) as base_url, httpx.AsyncClient() as client:
        options = ProviderOptions(
            name="claude", type_name="anthropic", base_url=base_url, api_key="k", default_model="m"
        )
        yield AnthropicProvider(options, client)


def sse(*events: dict[str, Any]) -> str:
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)


def message(**fields: Any) -> str:
    answer = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [{"type": "text", "text": "hi"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 3, "output_tokens": 2},
    }
    return json.dumps({**answer, **fields})


HI = ChatRequest(messages=(msg(Role.USER, "hi"),))


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
async def test_stop_reasons_map_to_finish_reasons(stop_reason: str, finish: str) -> None:
    async with answering(message(stop_reason=stop_reason), media_type="application/json") as p:
        assert (await p.chat(HI)).finish_reason == finish


async def test_cache_reads_and_writes_count_as_input_and_the_served_model_is_named() -> None:
    usage = {
        "input_tokens": 5,
        "output_tokens": 2,
        "cache_creation_input_tokens": 100,
        "cache_read_input_tokens": 1000,
    }
    content = [{"type": "thinking", "thinking": "..."}, {"type": "text", "text": "hi"}]
    async with answering(message(usage=usage, content=content), media_type="application/json") as p:
        result = await p.chat(HI)
    assert (result.content, result.model) == ("hi", "claude-sonnet-4-5-20250929")
    assert (result.usage.input_tokens, result.usage.output_tokens) == (1105, 2)


async def test_a_tool_use_without_an_input_object_is_malformed() -> None:
    content = [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": "Oslo"}]
    async with answering(message(content=content), media_type="application/json") as p:
        with pytest.raises(ProviderServerError, match="malformed"):
            await p.chat(HI)


START = {
    "type": "message_start",
    "message": {
        "model": "claude-x",
        "content": [],
        "usage": {"input_tokens": 4, "output_tokens": 1, "cache_read_input_tokens": 6},
    },
}
TEXT_START = {
    "type": "content_block_start",
    "index": 0,
    "content_block": {"type": "text", "text": ""},
}
HELLO = {
    "type": "content_block_delta",
    "index": 0,
    "delta": {"type": "text_delta", "text": "hello"},
}


async def test_stream_usage_counts_cache_and_takes_the_last_output_count() -> None:
    body = sse(
        START,
        TEXT_START,
        {"type": "ping"},
        {"type": "some_future_event", "index": 0},
        HELLO,
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "max_tokens"},
            "usage": {"output_tokens": 3},
        },
        {"type": "message_delta", "delta": {}, "usage": {"output_tokens": 9}},
        {"type": "message_stop"},
    )
    async with answering(body, media_type="text/event-stream") as p:
        events = await collect(p.stream(HI))
    assert events[0] == TextDelta(text="hello")
    done = events[-1]
    assert isinstance(done, StreamDone) and len(events) == 2
    assert (done.model, done.finish_reason) == ("claude-x", "length")
    assert (done.usage.input_tokens, done.usage.output_tokens) == (10, 9)


async def test_a_rate_limit_error_event_is_a_rate_limit() -> None:
    error = {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}
    async with answering(sse(START, TEXT_START, HELLO, error), media_type="text/event-stream") as p:
        with pytest.raises(ProviderRateLimited, match="slow down"):
            await collect(p.stream(HI))


async def test_a_tool_input_that_is_not_an_object_breaks_the_stream() -> None:
    tool = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
    body = sse(
        START,
        {"type": "content_block_start", "index": 0, "content_block": tool},
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": '["Os'},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": 'lo"]'},
        },
        {"type": "content_block_stop", "index": 0},
    )
    async with answering(body, media_type="text/event-stream") as p:
        with pytest.raises(ProviderStreamBroken, match="get_weather"):
            await collect(p.stream(HI))


async def test_a_200_that_is_not_an_event_stream_is_broken() -> None:
    async with answering(message(), media_type="application/json") as p:
        with pytest.raises(ProviderStreamBroken):
            await collect(p.stream(HI))


# --- the fake rejects what the real API rejects ----------------------------------------------


async def post(live: Running, body: dict[str, Any], **headers: str) -> httpx.Response:
    sent = {"x-api-key": "test-key", "anthropic-version": API_VERSION, **headers}
    return await live.client.post(f"{live.base_url}/v1/messages", json=body, headers=sent)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (
            {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
            "max_tokens: Field required",
        ),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
            },
            "roles must alternate",
        ),
        (
            {"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "a"}]},
            "top-level `system`",
        ),
        (
            {
                "model": "m",
                "max_tokens": 5,
                "messages": [
                    {"role": "user", "content": "w?"},
                    {
                        "role": "assistant",
                        "content": [
                            {"type": "tool_use", "id": "toolu_1", "name": "w", "input": {}}
                        ],
                    },
                    {
                        "role": "user",
                        "content": [
                            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "x"}
                        ],
                    },
                ],
            },
            "unexpected `tool_use_id`",
        ),
    ],
    ids=["no-max-tokens", "two-user-turns", "system-role", "unknown-tool-use-id"],
)
async def test_the_fake_rejects_like_the_api(
    live: Running, body: dict[str, Any], needle: str
) -> None:
    response = await post(live, body)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert needle in response.json()["error"]["message"]


async def test_the_fake_wants_the_version_header_and_the_key(live: Running) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    sent = {"x-api-key": "test-key"}
    no_version = await live.client.post(f"{live.base_url}/v1/messages", json=body, headers=sent)
    assert no_version.status_code == 400
    wrong_key = await post(live, body, **{"x-api-key": "nope"})
    assert wrong_key.status_code == 401
    assert wrong_key.json()["error"]["type"] == "authentication_error"
