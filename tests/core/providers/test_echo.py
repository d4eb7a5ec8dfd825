"""The offline echo provider answers with the user's text, marked as echo."""

from __future__ import annotations

from core.ports import Provider
from core.providers.echo import EchoProvider
from core.types import ChatMessage, ChatRequest, Role, StreamDone, TextDelta

REQUEST = ChatRequest(
    messages=(
        ChatMessage(role=Role.SYSTEM, content="be brief"),
        ChatMessage(role=Role.USER, content="first"),
        ChatMessage(role=Role.ASSISTANT, content="echo: first"),
        ChatMessage(role=Role.USER, content="hello there, world"),
    )
)


async def test_chat_echoes_the_last_user_message() -> None:
    provider = EchoProvider(name="offline")
    assert isinstance(provider, Provider)
    result = await provider.chat(REQUEST)
    assert result.content == "echo: hello there, world"
    assert (result.provider, result.model, result.finish_reason) == ("offline", "echo", "stop")
    assert result.usage.output_tokens == 4


async def test_stream_reassembles_to_the_same_text_and_ends_with_done() -> None:
    events = [event async for event in EchoProvider().stream(REQUEST)]
    assert isinstance(events[-1], StreamDone)
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == "echo: hello there, world"
    assert len(events) > 2


async def test_models_and_health_need_no_network() -> None:
    provider = EchoProvider()
    assert await provider.list_models() == ["echo"]
    assert (await provider.health_check()).healthy
