"""What is specific to Mistral's Chat Completions API, against the loopback fake over HTTP."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from core.errors import ProviderAuthError, ProviderBadRequest, ProviderOverloaded
from core.providers.mistral import MistralProvider, fits_mistral, mistral_tool_call_id
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
from tests.core.providers.case_mistral import CASE
from tests.core.providers.cases import Running, running
from tests.fakes.llm_script import Fail, FakeToolCall, Reply
from tests.fakes.server import serve_app

NINE_ALNUM = re.compile(r"[a-zA-Z0-9]{9}")
WEATHER = ToolSpec(name="get_weather", parameters={"type": "object"})


def ask(text: str, **kwargs: object) -> ChatRequest:
    return ChatRequest(messages=(ChatMessage(role=Role.USER, content=text),), **kwargs)


async def collect(stream: AsyncIterator[StreamEvent]) -> list[StreamEvent]:
    return [event async for event in stream]


def two_calls_history(first: ToolCall, second: ToolCall, *, ids: bool = True) -> ChatRequest:
    return ChatRequest(
        messages=(
            ChatMessage(role=Role.USER, content="weather in Oslo and Rome?"),
            ChatMessage(role=Role.ASSISTANT, tool_calls=(first, second)),
            ChatMessage(
                role=Role.TOOL,
                tool_call_id=second.id if ids else None,
                name=second.name,
                content="rain",
            ),
            ChatMessage(role=Role.TOOL, tool_call_id=first.id, name=None, content="sun"),
        ),
        tools=(WEATHER,),
    )


@pytest.fixture
async def live() -> AsyncIterator[Running]:
    async with running(CASE) as rig:
        yield rig


async def test_paths_carry_v1_under_the_bare_origin_and_max_tokens_is_sent(
    live: Running,
) -> None:
    await live.provider.chat(ask("bonjour", max_tokens=9))
    await live.provider.list_models()
    chat, models = live.script.requests
    assert (chat.path, models.path) == ("/v1/chat/completions", "/v1/models")
    assert chat.body["max_tokens"] == 9
    assert chat.headers["authorization"] == "Bearer test-key"


async def test_a_stream_gets_usage_from_the_last_chunk_without_stream_options(
    live: Running,
) -> None:
    live.script.push(Reply(tool_calls=(FakeToolCall("get_weather", {"city": "Nice"}),)))
    events = await collect(live.provider.stream(ask("weather?", tools=(WEATHER,))))
    assert "stream_options" not in live.script.chat_requests[0].body
    (call,) = [e.tool_call for e in events if isinstance(e, ToolCallEvent)]
    assert NINE_ALNUM.fullmatch(call.id) and call.arguments == {"city": "Nice"}
    done = events[-1]
    assert isinstance(done, StreamDone) and done.finish_reason == "tool_calls"
    assert (done.usage.input_tokens, done.usage.output_tokens) == (11, 7)


async def test_foreign_ids_map_to_nine_alphanumerics_consistently(live: Running) -> None:
    anthropic = ToolCall(id="toolu_01A09q90qw90lq917835lq9", name="get_weather")
    ours = ToolCall(id="call_" + "f" * 32, name="get_weather")
    await live.provider.chat(two_calls_history(anthropic, ours))
    await live.provider.chat(two_calls_history(anthropic, ours))
    first, again = (r.body["messages"] for r in live.script.chat_requests)
    call_ids = [c["id"] for c in first[1]["tool_calls"]]
    assert all(NINE_ALNUM.fullmatch(i) for i in call_ids) and len(set(call_ids)) == 2
    # each result carries its own call's mapped id, and the mapping holds across turns
    assert [first[2]["tool_call_id"], first[3]["tool_call_id"]] == [call_ids[1], call_ids[0]]
    assert [c["id"] for c in again[1]["tool_calls"]] == call_ids
    assert call_ids[0] == mistral_tool_call_id(anthropic.id)


async def test_ids_that_fit_are_kept_and_results_carry_the_tool_name(live: Running) -> None:
    mine = ToolCall(id="abcDEF123", name="get_weather")
    other = ToolCall(id="D681PevKs", name="get_time")
    await live.provider.chat(two_calls_history(mine, other, ids=False))
    _, assistant, second, first = live.script.chat_requests[0].body["messages"]
    assert [c["id"] for c in assistant["tool_calls"]] == ["abcDEF123", "D681PevKs"]
    # a result without an id is matched to the unanswered call of its name
    assert (second["tool_call_id"], second["name"]) == ("D681PevKs", "get_time")
    # a result without a name takes it from the call it answers
    assert (first["tool_call_id"], first["name"]) == ("abcDEF123", "get_weather")


def test_the_id_mapping_is_deterministic_and_always_fits() -> None:
    for original in ["", "call_1", "toolu_01A09q90qw90lq917835lq9", "é" * 50]:
        mapped = mistral_tool_call_id(original)
        assert fits_mistral(mapped) and mapped == mistral_tool_call_id(original)
        assert mistral_tool_call_id(original, 1) != mapped
    assert not fits_mistral("call_1234") and fits_mistral("ABCdef789")


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (
            '{"detail": [{"type": "missing", "loc": ["body", "model"], "msg": "Field required"}]}',
            "body.model: Field required",
        ),
        (
            '{"object": "error", "message": {"detail": [{"type": "extra_forbidden", "loc": '
            '["body", "n_ctx"], "msg": "Extra inputs are not permitted"}]}, '
            '"type": "invalid_request_error", "param": null, "code": null}',
            "body.n_ctx: Extra inputs are not permitted",
        ),
    ],
    ids=["bare-detail", "wrapped-detail"],
)
async def test_422_validation_bodies_of_both_shapes_name_the_field(
    live: Running, body: str, text: str
) -> None:
    live.script.push(Fail(422, raw_body=body))
    with pytest.raises(ProviderBadRequest, match=re.escape(text)):
        await live.provider.chat(ask("hi"))


async def test_gateway_auth_bodies_are_understood(live: Running) -> None:
    wrong = CASE.factory(CASE.options(live.base_url, api_key="nope"), live.client)
    with pytest.raises(ProviderAuthError, match="Unauthorized"):  # {"message": "Unauthorized"}
        await wrong.chat(ask("hi"))
    health = await wrong.health_check()  # {"detail": "Unauthorized"} on /v1/models
    assert health.error and "Unauthorized" in health.error


async def test_service_tier_capacity_is_an_overload(live: Running) -> None:
    live.script.push(Fail(503, kind="overloaded"))
    with pytest.raises(ProviderOverloaded, match="capacity exceeded"):
        await live.provider.chat(ask("hi"))


async def test_model_length_thinking_parts_and_object_arguments() -> None:
    # Shapes of Mistral's schema the scripted fake does not produce.
    async def chat(request: Request) -> Response:
        content = [
            {"type": "thinking", "thinking": [{"type": "text", "text": "hmm"}]},
            {"type": "text", "text": "Here:"},
        ]
        call = {
            "id": "Ab3dE6gH9",
            "function": {"name": "get_weather", "arguments": {"city": "Nice"}},
        }
        message = {"role": "assistant", "content": content, "tool_calls": [call]}
        usage = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
        return JSONResponse(
            {"choices": [{"message": message, "finish_reason": "model_length"}], "usage": usage}
        )

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    async with serve_app(app) as base_url, httpx.AsyncClient() as client:
        result = await MistralProvider(CASE.options(base_url), client).chat(ask("hi"))
    assert result.content == "Here:"
    assert result.tool_calls == (
        ToolCall(id="Ab3dE6gH9", name="get_weather", arguments={"city": "Nice"}),
    )
    assert result.finish_reason == "length"
    assert result.usage.total_tokens == 7
