"""What is specific to the Gemini wire format, against the fake over loopback HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.errors import (
    ProviderAuthError,
    ProviderBadRequest,
    ProviderOverloaded,
    ProviderRateLimited,
    ProviderServerError,
    ProviderStreamBroken,
)
from core.providers.google import PLACEHOLDER_SIGNATURE, GoogleProvider, gemini_schema
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
from tests.core.providers.case_google import CASE
from tests.core.providers.cases import Running, running
from tests.fakes.google_api import make_app, signature_for
from tests.fakes.llm_script import Fail, FakeToolCall, Reply, Script, StreamError
from tests.fakes.server import serve_app

WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather of a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def user(text: str) -> ChatMessage:
    return ChatMessage(role=Role.USER, content=text)


async def collect(stream: AsyncIterator[StreamEvent]) -> list[StreamEvent]:
    return [event async for event in stream]


@pytest.fixture
async def rig() -> AsyncIterator[Running]:
    async with running(CASE) as live:
        yield live


@asynccontextmanager
async def fixed_answer(body: str, *, status: int = 200) -> AsyncIterator[GoogleProvider]:
    """A provider against an API that answers every generate call with ``body``.

    A stream gets ``body`` as one event unless it is already event-stream text.
    """

    async def answer(request: Request) -> Response:
        if "alt=sse" not in str(request.url):
            return Response(body, status, media_type="application/json")
        events = body if body.startswith("data:") else f"data: {body}\r\n\r\n"
        return Response(events, status, media_type="text/event-stream")

    app = Starlette(routes=[Route("/v1beta/models/{target}", answer, methods=["POST"])])
    async with serve_app(app) as base_url, httpx.AsyncClient() as client:
        yield GoogleProvider(CASE.options(base_url), client)


def sse(*chunks: dict[str, Any]) -> str:
    return "".join(f"data: {json.dumps(chunk)}\r\n\r\n" for chunk in chunks)


def candidate(parts: list[dict[str, Any]], finish: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"content": {"role": "model", "parts": parts}}
    if finish:
        found["finishReason"] = finish
    return {"candidates": [found]}


# --- the request ----------------------------------------------------------------------


async def test_the_exact_json_sent(rig: Running) -> None:
    request = ChatRequest(
        messages=(
            ChatMessage(role=Role.SYSTEM, content="Be brief."),
            user("first"),
            user("second"),
            ChatMessage(role=Role.ASSISTANT, content="ok"),
            user("third"),
        ),
        max_tokens=64,
        temperature=0.2,
        tools=(WEATHER,),
    )
    await rig.provider.chat(request)
    (sent,) = rig.script.chat_requests
    assert sent.path == "/v1beta/models/fake-small:generateContent"
    assert sent.body == {
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "contents": [
            # consecutive messages of one role are one content: the API wants turns
            {"role": "user", "parts": [{"text": "first"}, {"text": "second"}]},
            {"role": "model", "parts": [{"text": "ok"}]},
            {"role": "user", "parts": [{"text": "third"}]},
        ],
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "Current weather of a city",
                        "parameters": WEATHER.parameters,
                    }
                ]
            }
        ],
        "generationConfig": {"maxOutputTokens": 64, "temperature": 0.2},
    }


async def test_no_generation_config_unless_asked(rig: Running) -> None:
    await rig.provider.chat(ChatRequest(messages=(user("hi"),)))
    assert rig.script.chat_requests[0].body == {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}]
    }


async def test_a_models_prefix_in_the_model_name_is_not_doubled(rig: Running) -> None:
    result = await rig.provider.chat(ChatRequest(messages=(user("hi"),), model="models/fake-large"))
    assert result.model == "fake-large"
    assert rig.script.chat_requests[0].path == "/v1beta/models/fake-large:generateContent"


async def test_tool_results_name_their_function_and_are_objects(rig: Running) -> None:
    calls = (
        ToolCall(
            id="toolu_01A09q90qw90lq917835lq9", name="get_weather", arguments={"city": "Rome"}
        ),
        ToolCall(id="call_2", name="get_time", arguments={}),
    )
    request = ChatRequest(
        messages=(
            user("weather and time in Rome?"),
            ChatMessage(role=Role.ASSISTANT, content="Looking.", tool_calls=calls),
            # no name: looked up from the assistant's call by id
            ChatMessage(role=Role.TOOL, tool_call_id=calls[0].id, content='{"sky": "rain"}'),
            ChatMessage(role=Role.TOOL, tool_call_id="call_2", name="get_time", content="[1, 2]"),
        ),
        tools=(WEATHER,),
    )
    await rig.provider.chat(request)
    contents = rig.script.chat_requests[0].body["contents"]
    assert contents[1] == {
        "role": "model",
        "parts": [
            {"text": "Looking."},
            # a call made by another API carries the documented placeholder signature
            {
                "functionCall": {
                    "name": "get_weather",
                    "args": {"city": "Rome"},
                    "id": calls[0].id,
                },
                "thoughtSignature": PLACEHOLDER_SIGNATURE,
            },
            {"functionCall": {"name": "get_time", "args": {}, "id": "call_2"}},
        ],
    }
    assert contents[2] == {
        "role": "user",
        "parts": [
            {
                "functionResponse": {
                    "name": "get_weather",
                    "response": {"sky": "rain"},
                    "id": calls[0].id,
                }
            },
            # JSON that is not an object, like plain text, is wrapped
            {
                "functionResponse": {
                    "name": "get_time",
                    "response": {"result": "[1, 2]"},
                    "id": "call_2",
                }
            },
        ],
    }


async def test_a_tool_result_with_no_name_to_find_is_refused_before_sending(rig: Running) -> None:
    request = ChatRequest(
        messages=(user("hi"), ChatMessage(role=Role.TOOL, tool_call_id="nowhere", content="x"))
    )
    with pytest.raises(ProviderBadRequest, match="nowhere"):
        await rig.provider.chat(request)
    assert rig.script.requests == []


async def test_a_thought_signature_goes_back_with_its_call(rig: Running) -> None:
    rig.script.push(Reply(tool_calls=(FakeToolCall("get_weather", {"city": "Oslo"}, id="fc-7"),)))
    first = await rig.provider.chat(ChatRequest(messages=(user("Oslo?"),), tools=(WEATHER,)))
    (call,) = first.tool_calls
    assert call.id == "fc-7"  # the API's own id when it gives one
    follow_up = ChatRequest(
        messages=(
            user("Oslo?"),
            ChatMessage(role=Role.ASSISTANT, tool_calls=first.tool_calls),
            ChatMessage(role=Role.TOOL, tool_call_id=call.id, name=call.name, content="sunny"),
        ),
        tools=(WEATHER,),
    )
    await rig.provider.chat(follow_up)
    replayed = rig.script.chat_requests[1].body["contents"][1]["parts"][0]
    assert replayed["thoughtSignature"] == signature_for("fc-7")


async def test_the_key_travels_in_a_header_never_in_the_url() -> None:
    urls: list[httpx.URL] = []

    async def remember(request: httpx.Request) -> None:
        urls.append(request.url)

    script = Script(api_key="sk-secret-gemini")
    hooks: dict[str, list[Callable[..., Any]]] = {"request": [remember]}
    async with (
        serve_app(make_app(script)) as base_url,
        httpx.AsyncClient(event_hooks=hooks) as client,
    ):
        provider = GoogleProvider(CASE.options(base_url, api_key="sk-secret-gemini"), client)
        await provider.chat(ChatRequest(messages=(user("hi"),)))
        await collect(provider.stream(ChatRequest(messages=(user("hi"),))))
        await provider.list_models()
        wrong = GoogleProvider(CASE.options(base_url, api_key="sk-wrong-gemini"), client)
        with pytest.raises(ProviderAuthError) as info:
            await wrong.chat(ChatRequest(messages=(user("hi"),)))
    assert len(urls) == 4
    assert all("key" not in url.params and "secret" not in str(url) for url in urls)
    assert all(r.headers["x-goog-api-key"] == "sk-secret-gemini" for r in script.requests[:3])
    assert "sk-" not in str(info.value) and "sk-" not in repr(provider)
    assert str(urls[1]).endswith(":streamGenerateContent?alt=sse")


# --- tool schemas ---------------------------------------------------------------------


def test_schema_keys_outside_the_gemini_subset_are_stripped_recursively() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "email": {"type": "string", "format": "email", "examples": ["a@b.c"]},
            "when": {"type": "string", "format": "date-time"},
            "note": {"type": ["string", "null"], "maxLength": 10},
            "mode": {"const": "fast"},
            "level": {"type": "integer", "enum": [1, 2], "exclusiveMinimum": 0},
            "either": {"oneOf": [{"type": "string"}, {"type": "number"}]},
            "address": {"$ref": "#/$defs/Address", "description": "where"},
            "tags": {"type": "array", "items": {"type": "string", "uniqueItems": True}},
        },
        "required": ["email", "ghost"],
        "$defs": {
            "Address": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "properties": {"city": {"type": "string", "title": "City"}},
            }
        },
    }
    assert gemini_schema(schema) == {
        "type": "object",
        "properties": {
            "email": {"type": "string"},
            "when": {"type": "string", "format": "date-time"},
            "note": {"type": "string", "nullable": True, "maxLength": 10},
            "mode": {"enum": ["fast"]},
            "level": {"type": "integer"},
            "either": {"anyOf": [{"type": "string"}, {"type": "number"}]},
            "address": {
                "type": "object",
                "description": "where",
                "properties": {"city": {"type": "string", "title": "City"}},
            },
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["email"],
    }


def test_a_recursive_ref_is_expanded_once() -> None:
    schema = {
        "$ref": "#/$defs/Node",
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "child": {"$ref": "#/$defs/Node"}},
            }
        },
    }
    node = gemini_schema(schema)
    assert node["properties"]["name"] == {"type": "string"}
    assert node["properties"]["child"] == {}


async def test_a_pydantic_style_tool_is_accepted_and_a_tool_without_arguments_omits_parameters(
    rig: Running,
) -> None:
    strict = ToolSpec(
        name="book",
        parameters={
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {"seats": {"type": "integer", "minimum": 1, "multipleOf": 1}},
            "additionalProperties": False,
        },
    )
    bare = ToolSpec(name="now", parameters={"type": "object", "properties": {}})
    await rig.provider.chat(ChatRequest(messages=(user("book"),), tools=(strict, bare)))
    declarations = rig.script.chat_requests[0].body["tools"][0]["functionDeclarations"]
    assert declarations == [
        {
            "name": "book",
            "parameters": {
                "type": "object",
                "properties": {"seats": {"type": "integer", "minimum": 1}},
            },
        },
        {"name": "now"},
    ]


# --- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(("delay", "seconds"), [(20, 20.0), (1.5, 1.5), (0.25, 0.25)])
async def test_the_retry_delay_comes_from_retry_info(
    rig: Running, delay: float, seconds: float
) -> None:
    rig.script.push(Fail(429, "Resource has been exhausted (e.g. check quota).", retry_after=delay))
    with pytest.raises(ProviderRateLimited) as info:
        await rig.provider.chat(ChatRequest(messages=(user("hi"),)))
    assert info.value.retry_after == pytest.approx(seconds)


async def test_retry_info_wins_over_a_retry_after_header(rig: Running) -> None:
    body = {
        "error": {
            "code": 429,
            "message": "You exceeded your current quota.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"},
            ],
        }
    }
    rig.script.push(Fail(429, retry_after=2, raw_body=json.dumps(body)))  # header says 2
    with pytest.raises(ProviderRateLimited, match="exceeded your current quota") as info:
        await rig.provider.chat(ChatRequest(messages=(user("hi"),)))
    assert info.value.retry_after == pytest.approx(7.0)


async def test_an_invalid_key_is_a_400_that_means_auth(rig: Running) -> None:
    wrong = GoogleProvider(CASE.options(rig.base_url, api_key="wrong"), rig.client)
    with pytest.raises(ProviderAuthError, match="API key not valid.*HTTP 400, API_KEY_INVALID"):
        await wrong.chat(ChatRequest(messages=(user("hi"),)))
    assert rig.script.requests[-1].headers["x-goog-api-key"] == "wrong"


async def test_no_key_at_all_is_an_auth_error(rig: Running) -> None:
    keyless = GoogleProvider(CASE.options(rig.base_url, api_key=None), rig.client)
    with pytest.raises(ProviderAuthError, match="HTTP 403"):
        await keyless.list_models()


async def test_a_plain_503_is_an_overload(rig: Running) -> None:
    rig.script.push(Fail(503, "The service is currently unavailable."))
    with pytest.raises(ProviderOverloaded):
        await rig.provider.chat(ChatRequest(messages=(user("hi"),)))


async def test_an_overload_mid_stream_is_an_overload(rig: Running) -> None:
    rig.script.push(StreamError(after_chunks=1, kind="overloaded"))
    seen: list[StreamEvent] = []
    with pytest.raises(ProviderOverloaded, match="overloaded"):
        async for event in rig.provider.stream(ChatRequest(messages=(user("hi"),))):
            seen.append(event)
    assert seen and all(isinstance(e, TextDelta) for e in seen)


async def test_quota_exhausted_mid_stream_is_a_rate_limit() -> None:
    error = {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}
    body = sse(candidate([{"text": "Hel"}]), {"error": error})
    async with fixed_answer(body) as provider:
        with pytest.raises(ProviderRateLimited, match="Resource exhausted"):
            await collect(provider.stream(ChatRequest(messages=(user("hi"),))))


async def test_an_unframed_error_after_the_last_chunk_is_a_broken_stream() -> None:
    # Seen from the real API: the error JSON written raw into the event stream.
    raw_error = '{\n  "error": {\n    "code": 503,\n    "status": "UNAVAILABLE"\n  }\n}\n'
    async with fixed_answer(sse(candidate([{"text": "Okay"}])) + raw_error) as provider:
        with pytest.raises(ProviderStreamBroken, match="finishReason"):
            await collect(provider.stream(ChatRequest(messages=(user("hi"),))))


# --- answers --------------------------------------------------------------------------


async def test_a_blocked_prompt_is_an_empty_content_filter_answer() -> None:
    blocked = {
        "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
        "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
    }
    async with fixed_answer(json.dumps(blocked)) as provider:
        result = await provider.chat(ChatRequest(messages=(user("something bad"),)))
        events = await collect(provider.stream(ChatRequest(messages=(user("bad"),))))
    assert (result.content, result.finish_reason) == ("", "content_filter")
    assert result.usage.input_tokens == 9
    assert events == [
        StreamDone(
            provider=provider.name,
            model="fake-small",
            finish_reason="content_filter",
            usage=result.usage,
        )
    ]


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("SPII", "content_filter"),
        ("MALFORMED_FUNCTION_CALL", "error"),
        ("OTHER", "error"),
    ],
)
async def test_finish_reasons(reason: str, finish: str) -> None:
    async with fixed_answer(json.dumps(candidate([{"text": "x"}], reason))) as provider:
        assert (await provider.chat(ChatRequest(messages=(user("hi"),)))).finish_reason == finish


async def test_thoughts_are_not_text_but_their_tokens_are_output() -> None:
    answer = candidate([{"text": "planning...", "thought": True}, {"text": "42"}], "STOP")
    answer["usageMetadata"] = {
        "promptTokenCount": 5,
        "candidatesTokenCount": 1,
        "thoughtsTokenCount": 30,
    }
    async with fixed_answer(json.dumps(answer)) as provider:
        result = await provider.chat(ChatRequest(messages=(user("answer?"),)))
        events = await collect(provider.stream(ChatRequest(messages=(user("answer?"),))))
    assert result.content == "42"
    assert (result.usage.input_tokens, result.usage.output_tokens) == (5, 31)
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["42"]


async def test_a_stream_reports_the_last_usage_not_a_sum(rig: Running) -> None:
    rig.script.push(Reply(text="a reply in several chunks", input_tokens=100, output_tokens=40))
    events = await collect(rig.provider.stream(ChatRequest(messages=(user("hi"),))))
    done = events[-1]
    assert isinstance(done, StreamDone)
    assert (done.usage.input_tokens, done.usage.output_tokens) == (100, 40)
    assert sum(isinstance(e, TextDelta) for e in events) >= 3


async def test_stream_tool_calls_keep_the_api_id_and_arrive_whole(rig: Running) -> None:
    calls = (FakeToolCall("get_weather", {"city": "Lima"}, id="fc-1"), FakeToolCall("now", {}))
    rig.script.push(Reply(text="Checking.", tool_calls=calls))
    events = await collect(
        rig.provider.stream(ChatRequest(messages=(user("?"),), tools=(WEATHER,)))
    )
    made = [e.tool_call for e in events if isinstance(e, ToolCallEvent)]
    assert [(c.id, c.name, c.arguments) for c in made][0] == (
        "fc-1",
        "get_weather",
        {"city": "Lima"},
    )
    assert made[1].id.startswith("call_") and made[1].name == "now"
    assert isinstance(events[-1], StreamDone) and events[-1].finish_reason == "tool_calls"


async def test_function_call_arguments_that_are_not_an_object_are_malformed() -> None:
    answer = candidate([{"functionCall": {"name": "get_weather", "args": "[1]"}}], "STOP")
    async with fixed_answer(json.dumps(answer)) as provider:
        with pytest.raises(ProviderServerError, match="not an object"):
            await provider.chat(ChatRequest(messages=(user("hi"),)))
        with pytest.raises(ProviderStreamBroken, match="not an object"):
            await collect(provider.stream(ChatRequest(messages=(user("hi"),))))


# --- models ---------------------------------------------------------------------------


async def test_models_are_listed_across_pages_and_only_chat_models() -> None:
    script = Script(models=["gemini-2.5-flash", "gemini-2.5-pro", "gemini-3-pro"])
    async with (
        serve_app(make_app(script, max_page_size=1)) as base_url,
        httpx.AsyncClient() as client,
    ):
        provider = GoogleProvider(CASE.options(base_url), client)
        assert await provider.list_models() == [
            "gemini-2.5-flash",
            "gemini-2.5-pro",
            "gemini-3-pro",
        ]
        health = await provider.health_check()
    # three chat models and one embedding model, one a page, then one page for the probe
    assert len(script.requests) == 5 and health.healthy
    assert [r.model for r in script.requests] == [None] * 5
