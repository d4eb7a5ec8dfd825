"""``/v1`` byte for byte: the exact JSON of answers, chunks and errors, and what bodies mean.

The raw tests read the gateway with plain httpx (no SDK smoothing anything over); the
conversion tests check what a body becomes before any provider sees it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from core.types import Role
from gateway.api.openai_hot_path import OpenAIChatService
from gateway.api.openai_wire import ChatCompletionBody, InvalidRequest, to_chat_request
from gateway.api.routes import openai_compat
from gateway.config_loader import load_config
from gateway.redaction import SecretRedactor
from gateway.wiring import build_app
from tests.fakes.llm_script import CutStream, FakeToolCall, Reply
from tests.gateway.conftest import admin_token, app_client
from tests.gateway.openai_rig import Gateway, openai_gateway


@pytest.fixture
async def gw(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Gateway]:
    async with openai_gateway(workspace, monkeypatch) as gateway:
        yield gateway


@pytest.fixture
async def raw(gw: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {gw.token}"}
    async with httpx.AsyncClient(base_url=f"{gw.url}/v1", headers=headers) as client:
        yield client


def frames(body: str) -> list[str]:
    """The ``data:`` payloads of a server-sent event stream, checking its framing."""
    assert body.endswith("\n\n")
    events = body[:-2].split("\n\n")
    assert all(e.startswith("data: ") and "\n" not in e for e in events), body
    return [e.removeprefix("data: ") for e in events]


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "gpt/fake-small", "messages": [{"role": "user", "content": "hi"}]} | fields


async def test_a_stream_is_exactly_openais_chunk_sequence(
    raw: httpx.AsyncClient, gw: Gateway
) -> None:
    call = FakeToolCall("lookup", {"q": "x"}, id="call_1")
    gw.gpt.push(Reply(text="Hi", tool_calls=(call,), input_tokens=4, output_tokens=6))
    response = await raw.post(
        "/chat/completions", json=chat(stream=True, stream_options={"include_usage": True})
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    *data, done = frames(response.text)
    assert done == "[DONE]"
    chunks = [json.loads(d) for d in data]
    first = chunks[0]
    assert first["id"].startswith("chatcmpl-") and isinstance(first["created"], int)
    envelope = {
        "id": first["id"],
        "object": "chat.completion.chunk",
        "created": first["created"],
        "model": "gpt/fake-small",
    }

    def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return envelope | {
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
            "usage": None,
        }

    texts = [c["choices"][0]["delta"]["content"] for c in chunks[1:-3]]
    assert "".join(texts) == "Hi"
    assert chunks == [
        choice({"role": "assistant", "content": ""}),
        *(choice({"content": t}) for t in texts),
        choice(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{"q":"x"}'},
                    }
                ]
            }
        ),
        choice({}, "tool_calls"),
        envelope
        | {
            "choices": [],
            "usage": {"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10},
        },
    ]
    assert [list(c) for c in chunks[:1]] == [
        ["id", "object", "created", "model", "choices", "usage"]
    ]


async def test_without_include_usage_no_chunk_has_usage(raw: httpx.AsyncClient) -> None:
    response = await raw.post("/chat/completions", json=chat(stream=True))
    *data, done = frames(response.text)
    chunks = [json.loads(d) for d in data]
    assert done == "[DONE]" and all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_a_complete_answer_is_exactly_openais_object(
    raw: httpx.AsyncClient, gw: Gateway
) -> None:
    gw.gpt.push(Reply(tool_calls=(FakeToolCall("lookup", {"q": "é"}, id="call_9"),)))
    body = (await raw.post("/chat/completions", json=chat(tools=[]))).json()
    assert body == {
        "id": body["id"],
        "object": "chat.completion",
        "created": body["created"],
        "model": "gpt/fake-small",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "refusal": None,
                    "tool_calls": [
                        {
                            "id": "call_9",
                            "type": "function",
                            "function": {"name": "lookup", "arguments": '{"q":"é"}'},
                        }
                    ],
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


async def test_errors_are_openais_error_object(raw: httpx.AsyncClient, gw: Gateway) -> None:
    stop = await raw.post("/chat/completions", json=chat(stop=["\n"]))
    assert stop.status_code == 400
    assert stop.json() == {
        "error": {
            "message": "stop: stop sequences are not supported by this gateway",
            "type": "invalid_request_error",
            "param": "stop",
            "code": "unsupported_parameter",
        }
    }
    not_json = await raw.post("/chat/completions", content=b"{nope")
    assert not_json.status_code == 400 and not_json.json()["error"]["code"] == "invalid_json"
    missing = await raw.post("/chat/completions", json={"model": "gpt/fake-small"})
    assert missing.json()["error"]["param"] == "messages"
    anonymous = await raw.post("/chat/completions", json=chat(), headers={"Authorization": ""})
    assert anonymous.status_code == 401
    assert set(anonymous.json()["error"]) == {"message", "type", "param", "code"}
    assert gw.gpt.chat_requests == []


async def test_a_broken_stream_ends_with_an_error_event_and_no_done(
    raw: httpx.AsyncClient, gw: Gateway
) -> None:
    gw.gpt.push(CutStream(Reply(text="cut me off right here"), after_chunks=1))
    response = await raw.post("/chat/completions", json=chat(stream=True))
    *data, last = frames(response.text)
    assert json.loads(data[1])["choices"][0]["delta"]["content"]
    error = json.loads(last)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"]) == ("server_error", "provider_stream_broken")
    assert "[DONE]" not in data


async def test_the_documented_route_answers_like_the_fast_path(workspace: Path) -> None:
    """The FastAPI route (what /docs shows) serves a request the same way, in case the
    middleware ever lets one through."""
    app = build_app(load_config(workspace), redactor=SecretRedactor())
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        bare = FastAPI()
        bare.state.runtime = app.state.runtime
        bare.state.openai_chat = OpenAIChatService()
        bare.include_router(openai_compat.router)
        transport = httpx.ASGITransport(app=bare)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            body = {"model": "echo", "messages": [{"role": "user", "content": "ping"}]}
            answer = (await client.post("/v1/chat/completions", json=body)).json()
            assert answer["model"] == "echo/echo"
            assert answer["choices"][0]["message"]["content"] == "echo: ping"
            streamed = await client.post("/v1/chat/completions", json=body | {"stream": True})
            assert frames(streamed.text)[-1] == "[DONE]"
            bad = await client.post("/v1/chat/completions", json=body | {"n": 2})
            assert (bad.status_code, bad.json()["error"]["param"]) == (400, "n")


async def test_openapi_documents_the_v1_routes(workspace: Path) -> None:
    async with app_client(workspace) as api:
        spec = (await api.get("/openapi.json")).json()
    post = spec["paths"]["/v1/chat/completions"]["post"]
    body = post["requestBody"]["content"]["application/json"]
    assert body["schema"]["$ref"] == "#/components/schemas/OpenAIChatCompletionBody"
    assert body["example"]["model"] == "claude/claude-sonnet-4-5"
    ok = post["responses"]["200"]["content"]
    assert ok["application/json"]["schema"]["$ref"] == "#/components/schemas/ChatCompletionOut"
    assert "text/event-stream" in ok
    assert {"/v1/models", "/v1/models/{model_id}"} <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    assert {"OpenAIChatCompletionBody", "OpenAIMessageIn", "ChatCompletionOut"} <= set(schemas)
    # Not /api/chat/multi's MessageIn, which has the same class name.
    assert "tool_call_id" in schemas["OpenAIMessageIn"]["properties"]
    assert schemas["OpenAIMessageIn"] != schemas["MessageIn"]
    assert admin_token(workspace) not in json.dumps(spec)


# --- what a body becomes ------------------------------------------------------------------------


def parse(**fields: Any) -> ChatCompletionBody:
    return ChatCompletionBody.model_validate_json(json.dumps(chat(**fields)))


def test_messages_become_our_conversation_model() -> None:
    body = parse(
        messages=[
            {"role": "developer", "content": [{"type": "text", "text": "be brief"}]},
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            },
            {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "annotations": [],
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}},
                    {
                        "id": "c2",
                        "type": "function",
                        "function": {"name": "g", "arguments": '{"x": 1}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "ok"}]},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "I can't"}]},
        ],
        max_tokens=10,
        max_completion_tokens=20,
        frequency_penalty=0.5,
        an_unknown_field={"ignored": True},
    )
    request = to_chat_request(body, model="fake-small")
    roles = [m.role for m in request.messages]
    assert roles == [Role.SYSTEM, Role.USER, Role.ASSISTANT, Role.TOOL, Role.ASSISTANT]
    assert [m.content for m in request.messages] == ["be brief", "a\nb", "", "ok", "I can't"]
    calls = request.messages[2].tool_calls
    assert [(c.id, c.name, c.arguments) for c in calls] == [("c1", "f", {}), ("c2", "g", {"x": 1})]
    assert request.messages[3].tool_call_id == "c1"
    assert (request.model, request.max_tokens) == ("fake-small", 20)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 3}, "n"),
        ({"stop": "END"}, "stop"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"audio": {"voice": "alloy", "format": "mp3"}}, "audio"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tool_choice": {"type": "function", "function": {"name": "f"}}}, "tool_choice"),
        ({"tools": [{"type": "custom", "custom": {"name": "c"}}]}, "tools[0].type"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        ({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "messages[0].role"),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "messages[0].content[0].type",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "c",
                                "type": "function",
                                "function": {"name": "f", "arguments": "[1]"},
                            }
                        ],
                    }
                ]
            },
            "messages[0].tool_calls[0].function.arguments",
        ),
    ],
)
def test_what_cannot_be_honoured_is_refused_naming_the_field(
    fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        to_chat_request(parse(**fields), model=None)
    assert refused.value.param == param and refused.value.http_status == 400
    assert refused.value.message.startswith(param.removesuffix(".type"))


def test_harmless_defaults_of_refused_fields_are_accepted() -> None:
    body = parse(
        n=1,
        stop=None,
        logprobs=False,
        response_format={"type": "text"},
        modalities=["text"],
        tool_choice="auto",
        stream_options={"include_usage": False, "include_obfuscation": False},
    )
    assert to_chat_request(body, model=None).messages[0].content == "hi"
