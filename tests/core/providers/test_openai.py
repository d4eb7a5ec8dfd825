"""What is specific to OpenAI's Chat Completions wire, against the loopback fake over real HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from core.errors import (
    ProviderAuthError,
    ProviderOverloaded,
    ProviderRateLimited,
    ProviderServerError,
)
from core.types import (
    ChatMessage,
    ChatRequest,
    Role,
    StreamDone,
    StreamEvent,
    ToolCall,
    ToolCallEvent,
    ToolSpec,
)
from tests.core.providers.case_openai import CASE
from tests.core.providers.cases import Running, running
from tests.fakes.llm_script import Fail, FakeToolCall, Reply, StreamError

WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather of a city",
    parameters={"type": "object", "properties": {"city": {"type": "string", "default": None}}},
)


def ask(text: str, **kwargs: object) -> ChatRequest:
    return ChatRequest(messages=(ChatMessage(role=Role.USER, content=text),), **kwargs)


def tool_history(call: ToolCall) -> ChatRequest:
    return ChatRequest(
        messages=(
            ChatMessage(role=Role.USER, content="weather?"),
            ChatMessage(role=Role.ASSISTANT, tool_calls=(call,)),
            ChatMessage(role=Role.TOOL, tool_call_id=call.id, name=call.name, content="rain"),
        ),
        tools=(WEATHER,),
    )


async def collect(stream: AsyncIterator[StreamEvent]) -> list[StreamEvent]:
    return [event async for event in stream]


@pytest.fixture
async def live() -> AsyncIterator[Running]:
    async with running(CASE) as rig:
        yield rig


async def test_the_request_json_uses_max_completion_tokens_and_function_tools(
    live: Running,
) -> None:
    await live.provider.chat(ask("hi", max_tokens=50, temperature=0.2, tools=(WEATHER,)))
    (sent,) = live.script.chat_requests
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer test-key"
    assert sent.body == {
        "model": "fake-small",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": False,
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Current weather of a city",
                    # null inside a JSON schema is kept: only our own unset fields are dropped
                    "parameters": WEATHER.parameters,
                },
            }
        ],
        "temperature": 0.2,
        "max_completion_tokens": 50,
    }


async def test_a_stream_asks_for_usage(live: Running) -> None:
    await collect(live.provider.stream(ask("hi")))
    body = live.script.chat_requests[0].body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


async def test_tool_history_sends_arguments_as_a_json_string(live: Running) -> None:
    call = ToolCall(id="call_abc", name="get_weather", arguments={"city": "Oslo"})
    await live.provider.chat(tool_history(call))
    _, assistant, tool = live.script.chat_requests[0].body["messages"]
    assert assistant == {
        "role": "assistant",
        "tool_calls": [
            {
                "id": "call_abc",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
            }
        ],
    }
    assert tool == {"role": "tool", "content": "rain", "tool_call_id": "call_abc"}


async def test_ids_longer_than_openai_allows_are_replaced_consistently(live: Running) -> None:
    long_id = "x" * 64
    await live.provider.chat(tool_history(ToolCall(id=long_id, name="get_weather")))
    await live.provider.chat(tool_history(ToolCall(id=long_id, name="get_weather")))
    first, second = (r.body["messages"] for r in live.script.chat_requests)
    sent_id = first[1]["tool_calls"][0]["id"]
    assert len(sent_id) <= 40 and sent_id == first[2]["tool_call_id"]
    assert second[1]["tool_calls"][0]["id"] == sent_id  # the same in every turn


async def test_tool_arguments_streamed_in_fragments_are_assembled_per_index(
    live: Running,
) -> None:
    live.script.push(
        Reply(
            text="Checking both.",
            tool_calls=(
                FakeToolCall("get_weather", {"city": "Oslo", "days": 3}, id="call_1"),
                FakeToolCall("get_weather", {"city": "Lima"}, id="call_2"),
            ),
        )
    )
    events = await collect(live.provider.stream(ask("two cities", tools=(WEATHER,))))
    calls = [e.tool_call for e in events if isinstance(e, ToolCallEvent)]
    assert [(c.id, c.arguments) for c in calls] == [
        ("call_1", {"city": "Oslo", "days": 3}),
        ("call_2", {"city": "Lima"}),
    ]
    done = events[-1]
    assert isinstance(done, StreamDone) and done.finish_reason == "tool_calls"
    assert done.usage.input_tokens == 11


async def test_a_wrong_key_echoed_by_the_api_is_masked(live: Running) -> None:
    secret = "sk-wrong-but-still-secret"
    wrong = CASE.factory(CASE.options(live.base_url, api_key=secret), live.client)
    with pytest.raises(ProviderAuthError) as info:
        await wrong.chat(ask("hi"))
    assert secret not in str(info.value)
    assert "Incorrect API key provided" in str(info.value)
    assert secret not in (await wrong.health_check()).error  # type: ignore[operator]


async def test_a_429_without_retry_after_waits_for_the_exhausted_limit(live: Running) -> None:
    live.script.push(Fail(429, "Rate limit reached for requests"))
    with pytest.raises(ProviderRateLimited) as info:
        await live.provider.chat(ask("hi"))
    assert info.value.retry_after == pytest.approx(0.02)  # x-ratelimit-reset-requests: 0.02s


async def test_an_overload_inside_a_stream_is_an_overload(live: Running) -> None:
    live.script.push(StreamError(after_chunks=1, kind="overloaded"))
    with pytest.raises(ProviderOverloaded):
        await collect(live.provider.stream(ask("hi")))


async def test_a_non_json_error_page_keeps_its_text(live: Running) -> None:
    live.script.push(Fail(502, raw_body="<html>upstream connect error</html>"))
    with pytest.raises(ProviderServerError, match="upstream connect error"):
        await live.provider.chat(ask("hi"))


async def test_the_fake_refuses_max_tokens_like_current_models(live: Running) -> None:
    # Guards the fake itself: the field the provider must not send is really refused.
    response = await live.client.post(
        live.base_url + "/v1/chat/completions",
        headers={"Authorization": "Bearer test-key"},
        json={
            "model": "fake-small",
            "messages": [{"role": "user", "content": "x"}],
            "max_tokens": 5,
        },
    )
    assert response.status_code == 400
    assert json.loads(response.content)["error"]["code"] == "unsupported_parameter"
