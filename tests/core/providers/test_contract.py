"""The one contract every provider passes, each against its own loopback fake."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from core.errors import (
    ContextTooLong,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderConnectionError,
    ProviderError,
    ProviderOverloaded,
    ProviderRateLimited,
    ProviderServerError,
    ProviderStreamBroken,
    ProviderTimeout,
)
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
from tests.core.providers.cases import ProviderCase, Running, discover, running
from tests.fakes.llm_script import (
    CutStream,
    Fail,
    FakeToolCall,
    Malformed,
    Reply,
    StreamError,
)
from tests.fakes.server import closed_port_url

CASES = discover()
WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather of a city",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
)


def ask(text: str, *, system: str | None = None, **kwargs: object) -> ChatRequest:
    messages = []
    if system:
        messages.append(ChatMessage(role=Role.SYSTEM, content=system))
    messages.append(ChatMessage(role=Role.USER, content=text))
    return ChatRequest(messages=tuple(messages), **kwargs)  # type: ignore[arg-type]


async def collect(stream: AsyncIterator[StreamEvent]) -> list[StreamEvent]:
    return [event async for event in stream]


def test_every_api_has_a_case() -> None:
    assert {c.type_name for c in CASES} >= {
        "openai",
        "openai_compatible",
        "anthropic",
        "google",
        "mistral",
        "ollama",
    }


@pytest.fixture(params=CASES, ids=lambda c: c.type_name)
async def live(request: pytest.FixtureRequest) -> AsyncIterator[Running]:
    case: ProviderCase = request.param
    async with running(case) as rig:
        yield rig


async def test_plain_answer_names_provider_model_and_usage(live: Running) -> None:
    result = await live.provider.chat(ask("hello", system="Answer briefly."))
    assert result.content == "fake[fake-small]: hello"
    assert (result.provider, result.model) == (live.provider.name, "fake-small")
    assert result.finish_reason == "stop"
    assert result.usage.input_tokens == 11 and result.usage.output_tokens == 7
    (sent,) = live.script.chat_requests
    assert sent.messages == [("system", "Answer briefly."), ("user", "hello")]
    assert sent.stream is False


async def test_per_request_model_override(live: Running) -> None:
    result = await live.provider.chat(ask("hi", model="fake-large"))
    assert result.model == "fake-large"
    assert live.script.chat_requests[0].model == "fake-large"


async def test_max_tokens_is_passed_and_length_is_reported(live: Running) -> None:
    live.script.push(Reply(text="cut", finish="length"))
    result = await live.provider.chat(ask("long story", max_tokens=5))
    assert result.finish_reason == "length"
    assert live.script.chat_requests[0].max_tokens == 5


async def test_tool_round_trip(live: Running) -> None:
    live.script.push(Reply(tool_calls=(FakeToolCall("get_weather", {"city": "Oslo", "days": 2}),)))
    first = await live.provider.chat(ask("weather in Oslo?", tools=(WEATHER,)))
    assert first.finish_reason == "tool_calls"
    (call,) = first.tool_calls
    assert (call.name, call.arguments) == ("get_weather", {"city": "Oslo", "days": 2})
    assert call.id
    assert live.script.chat_requests[0].tools == ["get_weather"]

    live.script.push(Reply(text="It is sunny in Oslo."))
    follow_up = ChatRequest(
        messages=(
            ChatMessage(role=Role.USER, content="weather in Oslo?"),
            ChatMessage(role=Role.ASSISTANT, tool_calls=first.tool_calls),
            ChatMessage(role=Role.TOOL, tool_call_id=call.id, name=call.name, content="sunny, 21C"),
        ),
        tools=(WEATHER,),
    )
    final = await live.provider.chat(follow_up)
    assert final.content == "It is sunny in Oslo."
    sent = live.script.chat_requests[1].messages
    assert sent[0] == ("user", "weather in Oslo?")
    assert sent[1][0] == "assistant" and sent[1][1].startswith("call get_weather(")
    assert sent[2][0] == "tool" and sent[2][1].endswith("=sunny, 21C")


async def test_tool_call_ids_from_another_provider_are_accepted(live: Running) -> None:
    # After a fallback, the history holds another API's ids; every provider must cope.
    foreign = ToolCall(
        id="toolu_01A09q90qw90lq917835lq9", name="get_weather", arguments={"city": "Rome"}
    )
    request = ChatRequest(
        messages=(
            ChatMessage(role=Role.USER, content="weather in Rome?"),
            ChatMessage(role=Role.ASSISTANT, tool_calls=(foreign,)),
            ChatMessage(role=Role.TOOL, tool_call_id=foreign.id, name=foreign.name, content="rain"),
        ),
        tools=(WEATHER,),
    )
    live.script.push(Reply(text="Take an umbrella."))
    assert (await live.provider.chat(request)).content == "Take an umbrella."


async def test_stream_yields_deltas_then_done_with_usage(live: Running) -> None:
    live.script.push(Reply(text="streamed answer in pieces"))
    events = await collect(live.provider.stream(ask("stream please")))
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) >= 2
    assert "".join(d.text for d in deltas) == "streamed answer in pieces"
    done = events[-1]
    assert isinstance(done, StreamDone)
    assert done.provider == live.provider.name and done.model == "fake-small"
    assert done.finish_reason == "stop"
    assert done.usage.input_tokens == 11 and done.usage.output_tokens == 7
    assert live.script.chat_requests[0].stream is True


async def test_stream_with_a_tool_call(live: Running) -> None:
    live.script.push(Reply(tool_calls=(FakeToolCall("get_weather", {"city": "Lima"}),)))
    events = await collect(live.provider.stream(ask("weather in Lima?", tools=(WEATHER,))))
    calls = [e.tool_call for e in events if isinstance(e, ToolCallEvent)]
    assert [(c.name, c.arguments) for c in calls] == [("get_weather", {"city": "Lima"})]
    assert calls[0].id
    done = events[-1]
    assert isinstance(done, StreamDone) and done.finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("step", "error", "retry_after"),
    [
        (Fail(429, "slow down", retry_after=2), ProviderRateLimited, 2.0),
        (Fail(401, "invalid key"), ProviderAuthError, None),
        (Fail(500, "boom"), ProviderServerError, None),
        (Fail(400, "bad field"), ProviderBadRequest, None),
        (Fail(400, "too long", kind="context"), ContextTooLong, None),
        (Fail(503, "overloaded", kind="overloaded"), ProviderOverloaded, None),
        (Malformed(), ProviderServerError, None),
    ],
    ids=["429", "401", "500", "400", "context", "overloaded", "malformed"],
)
async def test_errors_are_classified(
    live: Running, step: Fail | Malformed, error: type[ProviderError], retry_after: float | None
) -> None:
    live.script.push(step)
    with pytest.raises(error) as info:
        await live.provider.chat(ask("hi"))
    assert info.value.provider == live.provider.name
    if retry_after is not None:
        assert isinstance(info.value, ProviderRateLimited)
        assert info.value.retry_after == pytest.approx(retry_after)


async def test_errors_before_a_stream_starts_are_classified(live: Running) -> None:
    live.script.push(Fail(429, "slow down", retry_after=1))
    with pytest.raises(ProviderRateLimited):
        await collect(live.provider.stream(ask("hi")))


@pytest.mark.parametrize(
    "step",
    [CutStream(after_chunks=1), StreamError(after_chunks=1), Malformed(after_chunks=1)],
    ids=["cut", "error-event", "malformed-chunk"],
)
async def test_a_broken_stream_raises_after_the_text_it_sent(
    live: Running, step: CutStream | StreamError | Malformed
) -> None:
    live.script.push(step)
    seen: list[StreamEvent] = []
    with pytest.raises(ProviderStreamBroken):
        async for event in live.provider.stream(ask("hi")):
            seen.append(event)
    assert not any(isinstance(e, StreamDone) for e in seen)
    if not isinstance(step, Malformed):
        assert any(isinstance(e, TextDelta) for e in seen)


async def test_overload_in_a_stream_is_classified(live: Running) -> None:
    live.script.push(StreamError(after_chunks=0, kind="overloaded"))
    with pytest.raises((ProviderOverloaded, ProviderStreamBroken)):
        await collect(live.provider.stream(ask("hi")))


async def test_a_slow_answer_times_out(live: Running) -> None:
    slow = live.case.factory(
        live.case.options(live.base_url, timeout=httpx.Timeout(0.3, connect=1.0)), live.client
    )
    live.script.push(Reply(text="late", delay_s=1.5))
    with pytest.raises(ProviderTimeout):
        await slow.chat(ask("hi"))


async def test_an_unreachable_api_is_a_connection_error(live: Running) -> None:
    dead = live.case.factory(live.case.options(closed_port_url()), live.client)
    with pytest.raises(ProviderConnectionError):
        await dead.chat(ask("hi"))
    health = await dead.health_check()
    assert health.healthy is False and health.error


async def test_models_are_listed(live: Running) -> None:
    assert await live.provider.list_models() == ["fake-small", "fake-large"]


async def test_health_is_an_authenticated_listing_never_a_chat(live: Running) -> None:
    health = await live.provider.health_check()
    assert health.healthy is True
    assert health.latency_ms is not None and health.latency_ms >= 0
    assert live.script.chat_requests == []
    assert live.script.requests, "the probe must reach the API"


@pytest.fixture(params=[c for c in CASES if c.authenticated], ids=lambda c: c.type_name)
async def keyed(request: pytest.FixtureRequest) -> AsyncIterator[Running]:
    async with running(request.param) as rig:
        yield rig


async def test_a_wrong_key_is_unhealthy_and_an_auth_error(keyed: Running) -> None:
    live = keyed
    wrong = live.case.factory(live.case.options(live.base_url, api_key="wrong"), live.client)
    health = await wrong.health_check()
    assert health.healthy is False and health.error
    with pytest.raises(ProviderAuthError):
        await wrong.chat(ask("hi"))


async def test_no_model_anywhere_is_a_clear_bad_request(live: Running) -> None:
    bare = live.case.factory(live.case.options(live.base_url, default_model=None), live.client)
    with pytest.raises(ProviderBadRequest, match="default_model"):
        await bare.chat(ask("hi"))
