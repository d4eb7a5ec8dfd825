"""What is specific to Ollama's native API, against the loopback fake over real HTTP."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

import httpx
import pytest

from core.errors import (
    ProviderAuthError,
    ProviderBadRequest,
    ProviderOverloaded,
    ProviderServerError,
    ProviderStreamBroken,
)
from core.providers.ollama import OllamaProvider, new_call_id
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
from tests.core.providers.case_ollama import CASE
from tests.core.providers.cases import Running, running
from tests.fakes.llm_script import Fail, FakeToolCall, Reply, Script, StreamError
from tests.fakes.ollama_api import BUSY_MESSAGE, make_app
from tests.fakes.server import serve_app

WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather of a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)


def ask(
    text: str,
    *,
    model: str | None = None,
    tools: tuple[ToolSpec, ...] = (),
    max_tokens: int | None = None,
) -> ChatRequest:
    message = ChatMessage(role=Role.USER, content=text)
    return ChatRequest(messages=(message,), model=model, tools=tools, max_tokens=max_tokens)


async def collect(stream: AsyncIterator[StreamEvent]) -> list[StreamEvent]:
    return [event async for event in stream]


def ndjson(*objects: object) -> str:
    return "".join(json.dumps(o) + "\n" for o in objects)


@pytest.fixture
async def rig() -> AsyncIterator[Running]:
    async with running(CASE) as live:
        yield live


@asynccontextmanager
async def ollama(
    *,
    piece_bytes: int | None = None,
    piece_delay_s: float = 0.0,
    make_call_id: Callable[[], str] = new_call_id,
    **overrides: object,
) -> AsyncIterator[tuple[Script, OllamaProvider]]:
    """A provider built with non-default arguments, against a fake with non-default options."""
    script = Script()
    app = make_app(script, piece_bytes=piece_bytes, piece_delay_s=piece_delay_s)
    async with serve_app(app) as base_url, httpx.AsyncClient() as client:
        options = CASE.options(base_url, **overrides)
        yield script, OllamaProvider(options, client, make_call_id=make_call_id)


# --- the request on the wire ----------------------------------------------------------


async def test_the_exact_json_of_a_chat_request(rig: Running) -> None:
    request = ChatRequest(
        messages=(
            ChatMessage(role=Role.SYSTEM, content="Be brief."),
            ChatMessage(role=Role.USER, content="hi"),
        ),
        max_tokens=64,
        temperature=0.2,
        tools=(WEATHER,),
    )
    await rig.provider.chat(request)
    (sent,) = rig.script.chat_requests
    assert sent.path == "/api/chat"
    assert sent.headers["content-type"] == "application/json"
    assert sent.body == {
        "model": "fake-small",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
        ],
        "stream": False,
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Current weather of a city",
                    "parameters": WEATHER.parameters,
                },
            }
        ],
        "options": {"num_predict": 64, "temperature": 0.2},
    }


async def test_options_and_tools_are_left_out_when_unset(rig: Running) -> None:
    await collect(rig.provider.stream(ask("hi")))
    (sent,) = rig.script.chat_requests
    assert sent.body == {
        "model": "fake-small",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
    }


async def test_tool_history_sends_objects_and_tool_name(rig: Running) -> None:
    call = ToolCall(id="call_1", name="get_weather", arguments={"city": "Oslo"})
    request = ChatRequest(
        messages=(
            ChatMessage(role=Role.USER, content="weather?"),
            ChatMessage(role=Role.ASSISTANT, content="Let me check.", tool_calls=(call,)),
            # No name: it is looked up from the assistant's call with the same id.
            ChatMessage(role=Role.TOOL, tool_call_id="call_1", content="sunny"),
        ),
        tools=(WEATHER,),
    )
    await rig.provider.chat(request)
    messages = rig.script.chat_requests[0].body["messages"]
    assert messages[1] == {
        "role": "assistant",
        "content": "Let me check.",
        "tool_calls": [
            {"id": "call_1", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}
        ],
    }
    assert messages[2] == {
        "role": "tool",
        "content": "sunny",
        "tool_name": "get_weather",
        "tool_call_id": "call_1",
    }


async def test_bearer_header_only_when_a_key_is_set() -> None:
    async with ollama(api_key=None) as (script, provider):
        await provider.chat(ask("hi"))
        await provider.list_models()
        assert all("authorization" not in r.headers for r in script.requests)
    async with ollama(api_key="proxy-secret") as (script, provider):
        script.api_key = "proxy-secret"
        await provider.chat(ask("hi"))
        await provider.list_models()
        assert {r.headers["authorization"] for r in script.requests} == {"Bearer proxy-secret"}


async def test_a_proxy_refusing_the_key_is_an_auth_error() -> None:
    async with ollama(api_key="wrong-secret") as (_script, provider):
        with pytest.raises(ProviderAuthError) as info:
            await provider.chat(ask("hi"))
        assert "wrong-secret" not in str(info.value)
        health = await provider.health_check()
        assert health.healthy is False and "401" in (health.error or "")
        assert "wrong-secret" not in repr(provider)


# --- answers --------------------------------------------------------------------------


async def test_tool_calls_without_ids_get_unique_generated_ones(rig: Running) -> None:
    calls = (FakeToolCall("get_weather", {"city": "Oslo"}), FakeToolCall("get_weather", {}))
    rig.script.push(Reply(tool_calls=calls), Reply(tool_calls=calls))
    first = await rig.provider.chat(ask("two cities", tools=(WEATHER,)))
    events = await collect(rig.provider.stream(ask("two cities", tools=(WEATHER,))))
    streamed = [e.tool_call for e in events if isinstance(e, ToolCallEvent)]
    ids = [c.id for c in (*first.tool_calls, *streamed)]
    assert all(i.startswith("call_") for i in ids)
    assert len(set(ids)) == 4
    assert [c.arguments for c in first.tool_calls] == [{"city": "Oslo"}, {}]


async def test_an_id_from_ollama_is_kept() -> None:
    counter = itertools.count(1)
    async with ollama(make_call_id=lambda: f"gen_{next(counter)}") as (script, provider):
        script.push(
            Reply(
                tool_calls=(
                    FakeToolCall("get_weather", {"city": "Rome"}, id="call_abc"),
                    FakeToolCall("get_weather", {"city": "Lima"}),
                )
            )
        )
        result = await provider.chat(ask("weather", tools=(WEATHER,)))
    assert [c.id for c in result.tool_calls] == ["call_abc", "gen_1"]


def _whole(message: Mapping[str, object], **extra: object) -> str:
    return json.dumps({"model": "fake-small", "message": message, "done": True, **extra})


async def test_arguments_given_as_a_json_string_are_accepted(rig: Running) -> None:
    message = {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}],
    }
    rig.script.push(Fail(200, raw_body=_whole(message, done_reason="stop")))
    result = await rig.provider.chat(ask("weather", tools=(WEATHER,)))
    assert result.tool_calls[0].arguments == {"city": "Oslo"}
    assert result.finish_reason == "tool_calls"
    # prompt_eval_count and eval_count are left out when zero.
    assert (result.usage.input_tokens, result.usage.output_tokens) == (0, 0)


async def test_arguments_that_are_not_an_object_are_malformed(rig: Running) -> None:
    message = {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "[1]"}}]}
    rig.script.push(Fail(200, raw_body=_whole(message)))
    with pytest.raises(ProviderServerError, match="not a JSON object"):
        await rig.provider.chat(ask("hi"))
    rig.script.push(Fail(200, raw_body=ndjson(json.loads(_whole(message)))))
    with pytest.raises(ProviderStreamBroken, match="not a JSON object"):
        await collect(rig.provider.stream(ask("hi")))


async def test_length_is_reported_in_a_stream(rig: Running) -> None:
    rig.script.push(Reply(text="cut short", finish="length"))
    events = await collect(rig.provider.stream(ask("long story", max_tokens=3)))
    done = events[-1]
    assert isinstance(done, StreamDone) and done.finish_reason == "length"
    assert rig.script.chat_requests[0].body["options"] == {"num_predict": 3}


async def test_ndjson_lines_split_across_reads_are_reassembled() -> None:
    # 7-byte pieces split lines and, somewhere, the 2- and 3-byte UTF-8 characters.
    text = "héllo wörld, ünïcödé ✓ 日本語のテキスト"
    async with ollama(piece_bytes=7, piece_delay_s=0.002) as (script, provider):
        script.push(Reply(text=text))
        events = await collect(provider.stream(ask("hi")))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == text
    assert isinstance(events[-1], StreamDone) and events[-1].usage.output_tokens == 7


async def test_text_is_yielded_as_it_arrives(rig: Running) -> None:
    rig.script.push(Reply(text="one two three", chunk_delay_s=0.25))
    start = time.perf_counter()
    stream = rig.provider.stream(ask("hi"))
    first = await anext(stream)
    first_at = time.perf_counter() - start
    rest = await collect(stream)
    assert isinstance(first, TextDelta)
    assert first_at < 0.2 < time.perf_counter() - start
    assert isinstance(rest[-1], StreamDone)


# --- models and health ----------------------------------------------------------------


async def test_models_are_listed_with_their_tags_and_latest_is_implicit() -> None:
    async with ollama(default_model="llama3.2") as (script, provider):
        script.models = ["llama3.2:latest", "qwen3:8b"]
        assert await provider.list_models() == ["llama3.2:latest", "qwen3:8b"]
        assert (await provider.health_check()).healthy is True
        result = await provider.chat(ask("hi"))
        assert result.model == "llama3.2"
        assert (await provider.chat(ask("hi", model="qwen3:8b"))).model == "qwen3:8b"


async def test_a_default_model_that_is_not_pulled_is_unhealthy() -> None:
    async with ollama(default_model="mistral") as (script, provider):
        script.models = ["llama3.2:latest"]
        health = await provider.health_check()
        assert health.healthy is False
        assert "ollama pull mistral" in (health.error or "")
        with pytest.raises(ProviderBadRequest, match="ollama pull mistral"):
            await provider.chat(ask("hi"))


# --- errors ---------------------------------------------------------------------------


async def test_a_busy_ollama_is_overloaded_with_its_retry_hint(rig: Running) -> None:
    rig.script.push(Fail(503, kind="overloaded", retry_after=3))
    with pytest.raises(ProviderOverloaded) as info:
        await rig.provider.chat(ask("hi"))
    assert info.value.retry_after == pytest.approx(3.0)
    assert "maximum pending requests" in str(info.value)


async def test_a_proxy_503_without_busy_text_is_a_server_error(rig: Running) -> None:
    rig.script.push(Fail(503, raw_body="no healthy upstream"))
    with pytest.raises(ProviderServerError) as info:
        await rig.provider.chat(ask("hi"))
    assert not isinstance(info.value, ProviderOverloaded)
    assert "no healthy upstream" in str(info.value)


async def test_in_stream_errors(rig: Running) -> None:
    rig.script.push(StreamError(after_chunks=1, message="llama runner process has terminated"))
    with pytest.raises(ProviderStreamBroken, match="llama runner process has terminated"):
        await collect(rig.provider.stream(ask("hi")))
    rig.script.push(StreamError(after_chunks=1, kind="overloaded"))
    with pytest.raises(ProviderOverloaded, match="server busy"):
        await collect(rig.provider.stream(ask("hi")))
    assert BUSY_MESSAGE.count("  ") == 1  # the real text, two spaces included


async def test_a_stream_of_only_blank_lines_is_broken(rig: Running) -> None:
    rig.script.push(Fail(200, raw_body="\n\n"))
    with pytest.raises(ProviderStreamBroken, match="done"):
        await collect(rig.provider.stream(ask("hi")))
