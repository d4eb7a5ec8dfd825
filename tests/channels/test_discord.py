"""The Discord channel end to end: the real gateway, discord.py, and the Discord fake.

The gateway is built from a workspace config whose ``[channels.discord] api_base`` points at
the REST fake (which sends discord.py on to the Gateway fake) and whose default provider is
the OpenAI fake; each test plays the users.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from channels.discord import DiscordChannel
from channels.discord.render import reply_chunks
from core.config import DiscordSection, SecretRef
from core.errors import DeliveryRefused, DeliveryRetry
from core.types import ConversationKey, DecisionOutcome, InboundMessage, OutboundItem
from tests.fakes import openai_api
from tests.fakes.discord_api import DEFAULT_TOKEN, GENERAL, FakeDiscord, serve_discord
from tests.fakes.discord_wire import SentMessage
from tests.fakes.llm_script import FakeToolCall, Reply, Script
from tests.fakes.server import closed_port_url, serve_app
from tests.gateway.conftest import app_client

LLM_KEY = "sk-test-0123456789abcdef"
APPROVER, USER = "80351110224678912", "175928847299117063"
REQUIRED_INTENTS = 1 | 1 << 9 | 1 << 12 | 1 << 15  # guilds, guild and DM messages, content
SEND = ("POST", "/channels/{channel_id}/messages")


@dataclass
class World:
    discord: FakeDiscord
    llm: Script
    api: httpx.AsyncClient
    alice: dict[str, Any]  # a user, not an approver
    boss: dict[str, Any]  # an approver

    def answers(self, channel_id: str = GENERAL) -> list[SentMessage]:
        return self.discord.messages(channel_id)


def configure(workspace: Path, *, api_base: str, llm_url: str, gateway_url: str = "") -> None:
    text = workspace.read_text().replace("default = true\n", "")
    text = text.replace("approvers = []", f'approvers = ["discord:{APPROVER}"]')
    text += f"""
[providers.gpt]
type = "openai"
base_url = "{llm_url}/v1"
api_key = "env:SB_TEST_OPENAI_KEY"
default_model = "fake-small"
default = true
max_retries = 0

[tools.shell]
enabled = true
allow = ["echo"]

[channels.discord]
token = "env:SB_DISCORD_TOKEN"
api_base = "{api_base}"
gateway_url = "{gateway_url}"
"""
    workspace.write_text(text)


@asynccontextmanager
async def world_for(
    workspace: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    token: str = DEFAULT_TOKEN,
    gateway_url_wins: bool = False,
) -> AsyncIterator[World]:
    monkeypatch.setenv("SB_DISCORD_TOKEN", token)
    monkeypatch.setenv("SB_TEST_OPENAI_KEY", LLM_KEY)
    fake, llm = FakeDiscord(), Script(api_key=LLM_KEY)
    async with (
        serve_discord(fake) as api_base,
        serve_app(openai_api.make_app(llm)) as llm_url,
    ):
        gateway_url = ""
        if gateway_url_wins:  # /gateway/bot names a port nobody listens on
            gateway_url = fake.gateway.url
            fake.gateway_bot_url = closed_port_url().replace("http", "ws", 1)
        configure(workspace, api_base=api_base, llm_url=llm_url, gateway_url=gateway_url)
        async with app_client(workspace) as api:
            world = World(fake, llm, api, fake.user(USER, "alice"), fake.user(APPROVER, "boss"))
            if token == DEFAULT_TOKEN:
                await eventually(lambda: fake.gateway.connected and fake.commands)
            yield world


@pytest.fixture
async def world(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    async with world_for(workspace, monkeypatch) as world:
        yield world


async def eventually(check: Callable[[], Any], *, within_s: float = 15.0) -> Any:
    """Poll ``check`` until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        value = check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {within_s} s")
        await asyncio.sleep(0.02)


def mention(world: World, text: str) -> dict[str, Any]:
    """``alice`` writes ``@switchboard text`` in #general."""
    fake = world.discord
    return fake.user_message(
        GENERAL, world.alice, f"{fake.mention()} {text}", mentions=(fake.bot_user,)
    )


def sends(world: World) -> list[Any]:
    return [c for c in world.discord.calls if c[0] == "POST" and c[1].endswith("/messages")]


async def test_a_mention_in_a_guild_channel_is_answered_as_a_reply(world: World) -> None:
    asked = mention(world, "what is up?")
    (sent,) = await eventually(world.answers)
    assert sent.content == r"fake\[fake-small\]: what is up?"  # Discord markdown, escaped
    assert sent.message_reference is not None
    assert str(sent.message_reference["message_id"]) == asked["id"]
    assert sent.message_reference["fail_if_not_exists"] is False
    assert sent.allowed_mentions == {"parse": [], "replied_user": True}
    assert world.llm.chat_requests[0].messages[-1] == ("user", "what is up?")  # mention gone
    assert GENERAL in world.discord.typing
    (identify,) = world.discord.gateway.identifies
    assert identify["intents"] & REQUIRED_INTENTS == REQUIRED_INTENTS
    assert world.discord.gateway.query[0] == {
        "v": "10",
        "encoding": "json",
        "compress": "zlib-stream",
    }
    channels = (await world.api.get("/api/channels")).json()
    assert channels["discord"]["connected"] is True
    assert channels["discord"]["bot"] == "switchboard"
    ready = (await world.api.get("/readyz")).json()
    assert ready["checks"]["channels"]["discord"]["connected"] is True


async def test_a_direct_message_is_answered(world: World) -> None:
    dm = world.discord.dm_channel(world.alice)
    world.discord.user_message(dm, world.alice, "hello bot")
    (sent,) = await eventually(lambda: world.answers(dm))
    assert sent.content == r"fake\[fake-small\]: hello bot"
    assert world.answers(GENERAL) == []


async def test_bots_and_unaddressed_messages_are_ignored(world: World) -> None:
    fake = world.discord
    other_bot = fake.user("1999999999999999999", "otherbot", bot=True)
    fake.user_message(GENERAL, world.alice, "just chatting")
    fake.user_message(GENERAL, world.alice, "@everyone meeting now")
    fake.user_message(GENERAL, other_bot, f"{fake.mention()} ping", mentions=(fake.bot_user,))
    fake.user_message(GENERAL, fake.bot_user, f"{fake.mention()} me", mentions=(fake.bot_user,))
    mention(world, "the only question")
    (sent,) = await eventually(world.answers)
    assert sent.content == r"fake\[fake-small\]: the only question"
    await asyncio.sleep(0.3)
    assert len(world.answers()) == 1 and len(world.llm.chat_requests) == 1


async def test_the_same_message_dispatched_twice_is_answered_once(world: World) -> None:
    first = mention(world, "only once please")
    await eventually(world.answers)
    world.discord.dispatch_again(first)
    mention(world, "next")
    await eventually(lambda: len(world.answers()) == 2)
    await asyncio.sleep(0.3)
    assert [m.content for m in world.answers()] == [
        r"fake\[fake-small\]: only once please",
        r"fake\[fake-small\]: next",
    ]


async def test_long_answers_are_split_at_2000_and_never_ping(world: World) -> None:
    paragraph = "A **bold** claim, @everyone, with `code` and <@1234567890123456789>. " * 25
    answer = "\n\n".join([paragraph] * 4)
    chunks = reply_chunks(answer)
    assert len(chunks) == 4 and chunks[1] == chunks[2] == chunks[3]  # twins, all to be sent
    world.llm.push(Reply(text=answer))
    mention(world, "write a lot")
    messages = await eventually(lambda: (m := world.answers()) and len(m) == 4 and m)
    await asyncio.sleep(0.3)
    assert [m.content for m in world.answers()] == chunks
    assert all(len(m.content) <= 2000 for m in messages)
    assert "**bold**" in messages[0].content and "@\u200beveryone" in messages[0].content
    assert messages[0].message_reference is not None and messages[1].message_reference is None
    assert not any(m.pings_everyone for m in messages)
    assert all(m.allowed_mentions == {"parse": [], "replied_user": True} for m in messages)


async def test_a_slow_answer_streams_into_one_edited_message(world: World) -> None:
    text = "Streaming **answers** reach @everyone piece by piece, " * 6
    (rendered,) = reply_chunks(text)
    world.llm.push(Reply(text=text, chunk_delay_s=0.5))
    asked = mention(world, "take your time")
    (shown,) = await eventually(world.answers)
    assert shown.content != rendered and text.startswith(shown.content)  # the raw preview
    assert shown.allowed_mentions == {"parse": []} and not shown.pings_everyone
    assert shown.message_reference is not None
    assert str(shown.message_reference["message_id"]) == asked["id"]
    await eventually(lambda: shown.content == rendered, within_s=20)
    assert "@\u200beveryone" in shown.content  # the rendered answer replaced it
    assert shown.edits  # edited in place into the answer
    assert shown.edits[-1]["allowed_mentions"] == {"parse": [], "replied_user": True}
    await asyncio.sleep(0.3)
    assert world.answers() == [shown]
    assert world.llm.chat_requests[-1].stream


async def test_a_rate_limited_send_is_retried_and_sent_once(world: World) -> None:
    world.discord.fail_next(*SEND, status=429, retry_after=0.5)
    mention(world, "are you there?")
    (sent,) = await eventually(world.answers, within_s=20)
    assert sent.content == r"fake\[fake-small\]: are you there?"
    assert len(sends(world)) == 2  # the refused one and the retry
    await asyncio.sleep(0.5)
    assert len(world.answers()) == 1


async def test_an_answer_lost_on_its_way_back_is_not_sent_twice(world: World) -> None:
    world.discord.fail_next(*SEND, status=500, after_create=True)  # made, then "500"
    mention(world, "say it once")
    (sent,) = await eventually(world.answers)
    await eventually(lambda: len(sends(world)) == 2, within_s=20)  # tried again...
    await asyncio.sleep(0.5)
    assert world.answers() == [sent]  # ...and Discord knew the nonce
    nonces = {body["nonce"] for _, _, body in sends(world)}
    assert len(nonces) == 1


async def test_slash_ask_is_acknowledged_within_3_s_and_answered(world: World) -> None:
    world.llm.push(Reply(text="Four, after some thought.", delay_s=3.5))
    asked = world.discord.slash_ask(GENERAL, world.alice, "what is 2+2?")
    await eventually(lambda: asked.responses)
    assert asked.response_type == 5  # "thinking...", not yet the answer
    assert asked.answered_after_s is not None and asked.answered_after_s < 3.0
    # The streamed preview may show in the placeholder first; the answer ends up there.
    done = "Four, after some thought."
    await eventually(lambda: asked.original and asked.original.content == done, within_s=20)
    assert asked.original is not None and asked.original.edits
    assert world.llm.chat_requests[0].messages[-1] == ("user", "what is 2+2?")
    assert [m.id for m in world.answers()] == [asked.original.id]  # no extra message


async def test_approval_buttons_only_approvers_count(world: World) -> None:
    world.llm.push(
        Reply(
            text="I will run it.",
            tool_calls=(FakeToolCall("shell", {"argv": ["echo", "dc-ok"]}, id="c1"),),
        ),
        Reply(text="It printed dc-ok."),
    )
    mention(world, "run echo")
    reply, ask = await eventually(lambda: (m := world.answers()) and len(m) == 2 and m)
    assert reply.content == "I will run it."
    assert "Approval needed" in ask.content and "shell" in ask.content
    approve, reject = ask.buttons
    assert (approve["label"], reject["label"]) == ("Approve", "Reject")
    assert (approve["style"], reject["style"]) == (3, 4)
    assert approve["custom_id"].startswith("sb:y:") and reject["custom_id"].startswith("sb:n:")
    assert len(approve["custom_id"]) <= 100

    refused = world.discord.press(ask, approve["custom_id"], world.alice)
    await eventually(lambda: refused.responses)
    assert refused.response_type == 4 and refused.responses[0][1]["data"]["flags"] == 64
    assert refused.answered_after_s is not None and refused.answered_after_s < 3.0
    assert "not an approver" in refused.ephemeral_texts[0]
    await asyncio.sleep(0.3)
    runs = (await world.api.get("/api/actions", params={"status": "succeeded"})).json()
    assert not [a for a in runs if a["kind"] == "tool_call"]

    approved = world.discord.press(ask, approve["custom_id"], world.boss)
    await eventually(lambda: approved.responses)
    assert approved.answered_after_s is not None and approved.answered_after_s < 3.0
    assert "Approved" in approved.ephemeral_texts[0]
    final = await eventually(lambda: (m := world.answers()) and len(m) == 3 and m[-1])
    assert final.content == "It printed dc-ok."
    await eventually(lambda: "Approved" in ask.content)
    assert f"<@{APPROVER}>" in ask.content and f"discord:{APPROVER}" in ask.content
    assert ask.components == [] and ask.edits[-1]["components"] == []
    tool_text = [t for r, t in world.llm.chat_requests[-1].messages if r == "tool"][0]
    assert "dc-ok" in tool_text
    runs = (await world.api.get("/api/actions", params={"status": "succeeded"})).json()
    assert len([a for a in runs if a["kind"] == "tool_call"]) == 1

    late = world.discord.press(ask, reject["custom_id"], world.boss)
    await eventually(lambda: late.responses)
    assert "already decided" in late.ephemeral_texts[0]


async def test_a_dropped_gateway_connection_resumes_and_misses_nothing(world: World) -> None:
    gateway = world.discord.gateway
    gateway.drop(4000)
    mention(world, "sent while the bot was away")  # replayed by the resume
    await eventually(lambda: gateway.resumes and gateway.connected)
    (sent,) = await eventually(world.answers)
    assert sent.content == r"fake\[fake-small\]: sent while the bot was away"
    assert len(gateway.identifies) == 1 and gateway.heartbeats >= 2
    channels = (await world.api.get("/api/channels")).json()
    assert channels["discord"]["connected"] is True
    assert channels["discord"]["last_error"] == "gateway connection lost; reconnecting"


async def test_an_invalidated_session_identifies_again(world: World) -> None:
    gateway = world.discord.gateway
    gateway.invalidate_session()
    await eventually(lambda: len(gateway.identifies) == 2 and gateway.connected)
    mention(world, "still there?")
    (sent,) = await eventually(world.answers)
    assert sent.content == r"fake\[fake-small\]: still there?"
    status = (await world.api.get("/api/channels")).json()["discord"]
    assert status["connected"] is True and status["consecutive_failures"] == 0


async def test_the_configured_gateway_url_wins(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with world_for(workspace, monkeypatch, gateway_url_wins=True) as world:
        mention(world, "via the configured gateway")
        (sent,) = await eventually(world.answers)
        assert sent.content == r"fake\[fake-small\]: via the configured gateway"
        status = (await world.api.get("/api/channels")).json()["discord"]
        assert status["gateway"] == world.discord.gateway.url
        assert not [c for c in world.discord.calls if c[1].endswith("/gateway/bot")]


async def test_a_wrong_token_shows_in_the_channel_status(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with world_for(workspace, monkeypatch, token="wrong-token") as world:
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            status = (await world.api.get("/api/channels")).json()["discord"]
            if status["last_error"] or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.05)
        assert status["connected"] is False
        assert "unauthorized" in status["last_error"]
        assert world.discord.gateway.connections == 0


@pytest.mark.slow
async def test_approval_buttons_still_work_after_a_restart(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SB_DISCORD_TOKEN", DEFAULT_TOKEN)
    monkeypatch.setenv("SB_TEST_OPENAI_KEY", LLM_KEY)
    fake, llm = FakeDiscord(), Script(api_key=LLM_KEY)
    boss = fake.user(APPROVER, "boss")
    async with (
        serve_discord(fake) as api_base,
        serve_app(openai_api.make_app(llm)) as llm_url,
    ):
        configure(workspace, api_base=api_base, llm_url=llm_url)
        async with app_client(workspace):
            await eventually(lambda: fake.gateway.connected and fake.commands)
            llm.push(
                Reply(
                    text="Running.", tool_calls=(FakeToolCall("shell", {"argv": ["echo", "x"]}),)
                ),
                Reply(text="Done after the restart."),
            )
            alice = fake.user(USER, "alice")
            fake.user_message(GENERAL, alice, f"{fake.mention()} run", mentions=(fake.bot_user,))
            _, ask = await eventually(lambda: (m := fake.messages(GENERAL)) and len(m) == 2 and m)
        async with app_client(workspace):  # a new process: nothing of the first in memory
            await eventually(lambda: len(fake.gateway.identifies) == 2 and fake.gateway.connected)
            pressed = fake.press(ask, ask.buttons[0]["custom_id"], boss)
            await eventually(lambda: pressed.responses)
            assert "Approved" in pressed.ephemeral_texts[0]
            final = await eventually(
                lambda: (m := fake.messages(GENERAL)) and len(m) == 3 and m[-1]
            )
            assert final.content == "Done after the restart."
            await eventually(lambda: "Approved" in ask.content and ask.components == [])


class RecordingHost:
    """The channel host seam, recording (the adapter alone, without the gateway)."""

    def __init__(self) -> None:
        self.received: list[InboundMessage] = []

    async def receive(self, message: InboundMessage) -> None:
        self.received.append(message)

    async def decide(self, *, approval_id: str, approve: bool, decider: str) -> DecisionOutcome:
        return DecisionOutcome(ok=False, message=f"{decider} may not decide {approval_id}")


@contextlib.asynccontextmanager
async def bare_channel() -> AsyncIterator[tuple[FakeDiscord, DiscordChannel, RecordingHost]]:
    fake, host = FakeDiscord(), RecordingHost()
    async with serve_discord(fake) as api_base:
        token = SecretRef.model_validate("env:SB_DISCORD_TOKEN")
        token.attach(fake.token)
        channel = DiscordChannel(DiscordSection(token=token, api_base=api_base))
        task = asyncio.create_task(channel.run(host))
        try:
            await eventually(lambda: channel.status()["connected"])
            yield fake, channel, host
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await channel.close()


def reply_in(chat: str, text: str) -> OutboundItem:
    key = ConversationKey(platform="discord", chat=chat)
    return OutboundItem(kind="reply", conversation=key, text=text, markup="platform")


async def test_delivery_errors_are_retried_or_refused() -> None:
    not_running = DiscordChannel(DiscordSection(token=SecretRef.model_validate("env:X")))
    with pytest.raises(DeliveryRetry):
        await not_running.deliver(reply_in(GENERAL, "too early"), edit_message_id=None)
    async with bare_channel() as (fake, channel, _):
        fake.fail_next(*SEND, status=429, retry_after=45.0)  # over discord.py's own 30 s wait
        with pytest.raises(DeliveryRetry) as limited:
            await channel.deliver(reply_in(GENERAL, "hi"), edit_message_id=None)
        assert limited.value.retry_after == 45.0
        fake.fail_next(*SEND, status=503)
        with pytest.raises(DeliveryRetry):
            await channel.deliver(reply_in(GENERAL, "hi"), edit_message_id=None)
        fake.fail_next(*SEND, status=403)
        with pytest.raises(DeliveryRefused, match="Missing Permissions"):
            await channel.deliver(reply_in(GENERAL, "hi"), edit_message_id=None)
        with pytest.raises(DeliveryRefused, match="Unknown Channel"):
            await channel.deliver(reply_in("1999999999999999999", "hi"), edit_message_id=None)
        with pytest.raises(DeliveryRefused, match="Invalid Form Body"):
            await channel.deliver(reply_in(GENERAL, "x" * 2001), edit_message_id=None)
        assert fake.messages(GENERAL) == []
        ref = await channel.deliver(reply_in(GENERAL, "at last"), edit_message_id=None)
        (sent,) = fake.messages(GENERAL)
        assert ref == f"{GENERAL}:{sent.id}" and sent.content == "at last"
