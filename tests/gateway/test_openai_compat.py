"""``/v1`` driven by the official OpenAI SDK against the real gateway on a loopback port.

Upstream (``tests.gateway.openai_rig``): the OpenAI fake as ``gpt`` (the default) and the
Anthropic fake as ``claude`` (its fallback), so answers are translated from a non-OpenAI API
too; ``down`` is a provider nobody listens for, whose model listing fails.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest

from tests.fakes.llm_script import CutStream, Fail, FakeToolCall, Reply
from tests.gateway.openai_rig import LOOKUP, Gateway, openai_gateway


@pytest.fixture
async def gw(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Gateway]:
    async with openai_gateway(workspace, monkeypatch) as gateway:
        yield gateway


def hi(text: str = "hi") -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


async def test_the_sync_sdk_gets_a_complete_answer(gw: Gateway) -> None:
    def ask() -> openai.types.chat.ChatCompletion:
        with gw.sync_client() as client:
            return client.chat.completions.create(
                model="gpt/fake-small",
                messages=[{"role": "developer", "content": "be brief"}, *hi()],
                max_completion_tokens=50,
                temperature=0.2,
                top_p=0.9,
                seed=7,
                user="alice",
            )

    answer = await asyncio.to_thread(ask)
    assert answer.id.startswith("chatcmpl-") and answer.object == "chat.completion"
    assert answer.model == "gpt/fake-small"
    (choice,) = answer.choices
    assert choice.message.role == "assistant" and choice.message.content == "fake[fake-small]: hi"
    assert choice.finish_reason == "stop"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (11, 7)
    assert answer.usage.total_tokens == 18
    (upstream,) = gw.gpt.chat_requests
    assert upstream.messages == [("system", "be brief"), ("user", "hi")]
    assert upstream.max_tokens == 50 and upstream.body["temperature"] == 0.2


async def test_a_stream_with_usage_ends_with_the_usage_chunk(gw: Gateway) -> None:
    gw.claude.push(Reply(text="several streamed words", input_tokens=5, output_tokens=3))
    async with gw.client() as client:
        stream = await client.chat.completions.create(
            model="claude/fake-large",
            messages=hi(),
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]  # the SDK stops at [DONE]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "several streamed words"
    assert {c.model for c in chunks} == {"claude/fake-large"}
    assert len({c.id for c in chunks}) == 1
    *_, finish, last = chunks
    assert finish.choices[0].finish_reason == "stop" and finish.usage is None
    assert last.choices == [] and last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (5, 3)


async def test_a_tool_round_trip_through_a_non_openai_provider(gw: Gateway) -> None:
    gw.claude.push(Reply(tool_calls=(FakeToolCall("lookup", {"q": "switchboard"}),)))
    async with gw.client() as client:
        first = await client.chat.completions.create(
            model="claude/fake-small", messages=hi("find it"), tools=[LOOKUP]
        )
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls" and choice.message.content is None
        (call,) = choice.message.tool_calls or []
        assert call.type == "function" and call.function.name == "lookup"
        assert json.loads(call.function.arguments) == {"q": "switchboard"}
        gw.claude.push(Reply(text="a gateway for chat bots"))
        second = await client.chat.completions.create(
            model="claude/fake-small",
            tools=[LOOKUP],
            messages=[
                *hi("find it"),
                choice.message.model_dump(exclude_none=True),  # as the SDK gave it
                {"role": "tool", "tool_call_id": call.id, "content": "Switchboard: a gateway"},
            ],
        )
    assert second.choices[0].message.content == "a gateway for chat bots"
    upstream = gw.claude.chat_requests[-1]
    assert upstream.messages[1:] == [
        ("assistant", 'call lookup({"q": "switchboard"})'),
        ("tool", f"{call.id}=Switchboard: a gateway"),
    ]
    assert upstream.tools == ["lookup"]


async def test_a_streamed_tool_call_is_assembled_by_the_sdk(gw: Gateway) -> None:
    gw.gpt.push(Reply(text="Let me look.", tool_calls=(FakeToolCall("lookup", {"q": "x"}),)))
    async with (
        gw.client() as client,
        client.chat.completions.stream(
            model="gpt/fake-small", messages=hi(), tools=[LOOKUP]
        ) as stream,
    ):
        final = await stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Let me look."
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "lookup" and json.loads(call.function.arguments) == {"q": "x"}


async def test_tool_choice_none_sends_no_tools(gw: Gateway) -> None:
    async with gw.client() as client:
        await client.chat.completions.create(
            model="gpt/fake-small", messages=hi(), tools=[LOOKUP], tool_choice="none"
        )
    assert gw.gpt.chat_requests[-1].tools == []


async def test_models_are_listed_and_retrieved_as_provider_slash_model(gw: Gateway) -> None:
    async with gw.client() as client:
        listed = [m async for m in client.models.list()]
        ids = {m.id for m in listed}
        assert {"gpt/fake-small", "gpt/gpt-only", "claude/claude-only", "echo/echo"} <= ids
        assert not any(i.startswith("down/") for i in ids)  # its listing failed
        assert {m.owned_by for m in listed} == {"gpt", "claude", "echo"}
        one = await client.models.retrieve("claude/claude-only")
        assert (one.id, one.owned_by, one.object) == ("claude/claude-only", "claude", "model")
        plain = await client.models.retrieve("gpt-only")
        assert plain.id == "gpt/gpt-only"
        with pytest.raises(openai.NotFoundError):
            await client.models.retrieve("claude/gpt-only")


async def test_a_model_id_goes_where_it_is_listed(gw: Gateway) -> None:
    async with gw.client() as client:
        only_claude = await client.chat.completions.create(model="claude-only", messages=hi())
        both = await client.chat.completions.create(model="fake-small", messages=hi())
        unlisted = await client.chat.completions.create(model="fake-unlisted", messages=hi())
    assert only_claude.model == "claude/claude-only"
    assert both.model == "gpt/fake-small"  # listed twice: the default provider
    assert unlisted.model == "gpt/fake-unlisted"
    assert unlisted.choices[0].message.content == "fake[fake-unlisted]: hi"


async def test_a_stream_falls_back_before_its_first_token_and_names_who_answered(
    gw: Gateway,
) -> None:
    gw.gpt.push(Fail(500, "upstream exploded"))
    async with gw.client() as client:
        stream = await client.chat.completions.create(
            model="fake-unlisted", messages=hi(), stream=True
        )
        chunks = [chunk async for chunk in stream]
    assert {c.model for c in chunks} == {"claude/fake-small"}
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "fake[fake-small]: hi"


async def test_errors_raise_the_sdk_exception_that_fits(gw: Gateway) -> None:
    async with gw.client() as client:
        with pytest.raises(openai.NotFoundError) as unknown:
            await client.chat.completions.create(model="claud/fake-small", messages=hi())
        assert "did you mean 'claude'" in unknown.value.message
        assert unknown.value.code == "provider_not_found" and unknown.value.param == "model"
        with pytest.raises(openai.BadRequestError) as image:
            await client.chat.completions.create(
                model="gpt/fake-small",
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "what is this?"},
                            {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                        ],
                    }
                ],
            )
        assert image.value.param == "messages[0].content[1].type"
        assert "image input is not supported" in image.value.message
        with pytest.raises(openai.BadRequestError) as many:
            await client.chat.completions.create(model="gpt/fake-small", messages=hi(), n=2)
        assert many.value.param == "n"
        with pytest.raises(openai.BadRequestError) as arguments:
            await client.chat.completions.create(
                model="gpt/fake-small",
                messages=[
                    *hi(),
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "lookup", "arguments": "{not json"},
                            }
                        ],
                    },
                ],
            )
        assert arguments.value.param == "messages[1].tool_calls[0].function.arguments"
        gw.claude.push(Fail(400, "messages: text content blocks must be non-empty"))
        with pytest.raises(openai.BadRequestError) as upstream:
            await client.chat.completions.create(
                model="claude/fake-small", messages=hi(), stream=True
            )
        assert "must be non-empty" in upstream.value.message
    async with gw.client(api_key="not-the-token") as stranger:
        with pytest.raises(openai.AuthenticationError) as denied:
            await stranger.chat.completions.create(model="gpt/fake-small", messages=hi())
        assert "admin token" in denied.value.message
        with pytest.raises(openai.AuthenticationError):
            await stranger.models.list()
    assert gw.gpt.chat_requests == []  # refused bodies never reach a provider


async def test_a_stream_cut_after_tokens_raises_instead_of_truncating(gw: Gateway) -> None:
    gw.gpt.push(CutStream(Reply(text="this answer will be cut short"), after_chunks=1))
    received: list[str] = []
    async with gw.client() as client:
        stream = await client.chat.completions.create(
            model="gpt/fake-small", messages=hi(), stream=True
        )
        with pytest.raises(openai.APIError) as broken:
            async for chunk in stream:
                received.append(chunk.choices[0].delta.content or "")
    text = "".join(received)
    assert text and "this answer will be cut short".startswith(text)
    assert broken.value.code == "provider_stream_broken"
    assert gw.claude.chat_requests == []  # no fallback once text was sent


async def test_a_client_that_leaves_closes_the_upstream_stream(
    gw: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="switchboard.api")
    gw.gpt.push(Reply(text="a slow answer in three pieces", chunk_delay_s=1.0))
    async with gw.client() as client:
        stream = await client.chat.completions.create(
            model="gpt/fake-small", messages=hi(), stream=True
        )
        first = await anext(aiter(stream))
        assert first.choices[0].delta.role == "assistant"
        await stream.close()
    # Only a stream cut short by its client logs this; one that ran to its end does not.
    for _ in range(150):
        if "event=stream_abandoned" in caplog.text:
            break
        await asyncio.sleep(0.02)
    assert "event=stream_abandoned" in caplog.text
