"""The Telegram channel end to end: the real gateway, aiogram, and the Bot API fake.

The gateway is built from a workspace config whose Telegram ``api_base`` points at the
fake and whose default provider is the OpenAI fake; each test plays the users.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

# Imported at collection, as the gateway imports it only when Telegram is configured: aiogram's
# import takes seconds, which would otherwise fall inside the first test's timed start-up.
import channels.telegram  # noqa: F401
from tests.fakes import openai_api
from tests.fakes.llm_script import FakeToolCall, Reply, Script
from tests.fakes.server import serve_app
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.telegram_api import make_app as telegram_app
from tests.gateway.conftest import app_client

TOKEN = "123456:TEST-token"
LLM_KEY = "sk-test-0123456789abcdef"
APPROVER, USER = 7, 42


@dataclass
class World:
    telegram: FakeTelegram
    llm: Script
    api: httpx.AsyncClient
    workspace: Path


def configure(workspace: Path, *, telegram_url: str, llm_url: str, mode: str = "polling") -> None:
    text = workspace.read_text().replace("default = true\n", "")
    text = text.replace("approvers = []", f'approvers = ["telegram:{APPROVER}"]')
    webhook = (
        '\nsecret_token = "env:SB_TG_SECRET"\nwebhook_url = "https://bot.example/telegram/webhook"'
        if mode == "webhook"
        else ""
    )
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

[channels.telegram]
token = "env:SB_TG_TOKEN"
api_base = "{telegram_url}"
mode = "{mode}"{webhook}
"""
    workspace.write_text(text)


@pytest.fixture
async def world(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    async with world_for(workspace, monkeypatch) as world:
        yield world


def world_for(workspace: Path, monkeypatch: pytest.MonkeyPatch, *, mode: str = "polling") -> Any:
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def build() -> AsyncIterator[World]:
        monkeypatch.setenv("SB_TG_TOKEN", TOKEN)
        monkeypatch.setenv("SB_TG_SECRET", "hook-secret_123")
        monkeypatch.setenv("SB_TEST_OPENAI_KEY", LLM_KEY)
        telegram, llm = FakeTelegram(TOKEN), Script(api_key=LLM_KEY)
        async with (
            serve_app(telegram_app(telegram)) as telegram_url,
            serve_app(openai_api.make_app(llm)) as llm_url,
        ):
            configure(workspace, telegram_url=telegram_url, llm_url=llm_url, mode=mode)
            async with app_client(workspace) as api:
                yield World(telegram, llm, api, workspace)

    return build()


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


async def test_a_direct_message_is_answered_in_the_chat(world: World) -> None:
    update = world.telegram.user_message(USER, USER, "hello bot")
    (sent,) = await eventually(lambda: world.telegram.messages(USER))
    assert sent.plain == "fake[fake-small]: hello bot"
    assert sent.reply_to == update["message"]["message_id"]
    assert sent.parse_mode == "HTML"
    channels = (await world.api.get("/api/channels")).json()
    assert channels["telegram"]["connected"] is True
    assert channels["telegram"]["bot"] == "switchboard_bot"
    ready = (await world.api.get("/readyz")).json()
    assert ready["checks"]["channels"]["telegram"]["connected"] is True


async def test_in_groups_only_messages_for_the_bot_are_answered(world: World) -> None:
    group = -100123
    world.telegram.user_message(group, USER, "just chatting", chat_type="supergroup")
    world.telegram.user_message(group, USER, "@switchboard_bot what is up?", chat_type="supergroup")
    (sent,) = await eventually(lambda: world.telegram.messages(group))
    assert sent.plain == "fake[fake-small]: what is up?"
    await asyncio.sleep(0.3)
    assert len(world.telegram.messages(group)) == 1
    assert len(world.llm.chat_requests) == 1


async def test_a_redelivered_update_is_answered_once(world: World) -> None:
    update = world.telegram.user_message(USER, USER, "only once please")
    await eventually(lambda: world.telegram.messages(USER))
    world.telegram._enqueue("message", update["message"])  # Telegram sends it again
    world.telegram.user_message(USER, USER, "next")
    await eventually(lambda: len(world.telegram.messages(USER)) == 2)
    assert [m.plain for m in world.telegram.messages(USER)] == [
        "fake[fake-small]: only once please",
        "fake[fake-small]: next",
    ]


async def test_long_answers_are_split_and_markdown_rendered(world: World) -> None:
    paragraph = "A **bold** claim with `code` and <angle> & ampersand. " * 40
    world.llm.push(Reply(text="\n\n".join([paragraph] * 4)))
    world.telegram.user_message(USER, USER, "write a lot")
    messages = await eventually(lambda: (m := world.telegram.messages(USER)) and len(m) >= 2 and m)
    assert all(len(m.plain) <= 4096 for m in messages)
    assert "<b>bold</b>" in messages[0].text and "&lt;angle&gt;" in messages[0].text
    assert messages[0].reply_to is not None and messages[1].reply_to is None


async def test_a_rate_limited_send_is_retried_and_sent_once(world: World) -> None:
    world.telegram.fail_next("sendMessage", status=429, retry_after=1)
    world.telegram.user_message(USER, USER, "are you there?")
    (sent,) = await eventually(lambda: world.telegram.messages(USER), within_s=20)
    assert sent.plain == "fake[fake-small]: are you there?"
    sends = [c for c in world.telegram.calls if c[0].lower() == "sendmessage"]
    assert len(sends) == 2  # the refused one and the retry


async def test_approval_buttons_in_the_chat_only_approvers_count(world: World) -> None:
    world.llm.push(
        Reply(
            text="I will run it.",
            tool_calls=(FakeToolCall("shell", {"argv": ["echo", "tg-ok"]}, id="c1"),),
        ),
        Reply(text="It printed tg-ok."),
    )
    world.telegram.user_message(USER, USER, "run echo")
    reply, ask = await eventually(
        lambda: (m := world.telegram.messages(USER)) and len(m) == 2 and m
    )
    assert reply.plain == "I will run it."
    assert "Approval needed" in ask.plain and "shell" in ask.plain
    ((approve, reject),) = ask.buttons
    assert (approve["text"], reject["text"]) == ("Approve", "Reject")
    assert len(approve["callback_data"].encode()) <= 64

    world.telegram.callback(USER, USER, ask.message_id, approve["callback_data"])
    refusal = await eventually(lambda: world.telegram.callback_answers)
    assert refusal[0]["show_alert"] in (True, "true")
    assert "not an approver" in refusal[0]["text"]
    await asyncio.sleep(0.3)
    runs = (await world.api.get("/api/actions", params={"status": "succeeded"})).json()
    assert not [a for a in runs if a["kind"] == "tool_call"]

    world.telegram.callback(USER, APPROVER, ask.message_id, approve["callback_data"])
    await eventually(lambda: len(world.telegram.callback_answers) == 2)
    assert "Approved" in world.telegram.callback_answers[1]["text"]
    final = await eventually(lambda: (m := world.telegram.messages(USER)) and len(m) == 3 and m[-1])
    assert final.plain == "It printed tg-ok."
    edited = world.telegram.messages(USER)[1]
    await eventually(lambda: "Approved" in edited.plain)
    assert "telegram:7" in edited.plain and edited.buttons == []
    tool_text = [t for r, t in world.llm.chat_requests[-1].messages if r == "tool"][0]
    assert "tg-ok" in tool_text

    world.telegram.callback(USER, APPROVER, ask.message_id, reject["callback_data"])
    late = await eventually(lambda: len(world.telegram.callback_answers) == 3)
    assert late and "already decided" in world.telegram.callback_answers[2]["text"]


async def test_webhook_mode_checks_the_secret_token(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with world_for(workspace, monkeypatch, mode="webhook") as world:
        await eventually(lambda: world.telegram.webhook_url)
        assert world.telegram.webhook_secret == "hook-secret_123"
        update = world.telegram.user_message(USER, USER, "via webhook")
        forged = await world.api.post(
            "/telegram/webhook",
            json=update,
            headers={"X-Telegram-Bot-Api-Secret-Token": "wrong", "Authorization": ""},
        )
        assert forged.status_code == 401
        await asyncio.sleep(0.2)
        assert world.telegram.messages(USER) == [] and world.llm.chat_requests == []
        good = await world.api.post(
            "/telegram/webhook",
            json=update,
            headers={"X-Telegram-Bot-Api-Secret-Token": "hook-secret_123", "Authorization": ""},
        )
        assert good.status_code == 200
        (sent,) = await eventually(lambda: world.telegram.messages(USER))
        assert sent.plain == "fake[fake-small]: via webhook"


@pytest.mark.slow
async def test_kill_9_mid_answer_loses_nothing_and_answers_once(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.gateway.test_crash import gateway

    monkeypatch.setenv("SB_TG_TOKEN", TOKEN)
    monkeypatch.setenv("SB_TEST_OPENAI_KEY", LLM_KEY)
    telegram, llm = FakeTelegram(TOKEN), Script(api_key=LLM_KEY)
    async with (
        serve_app(telegram_app(telegram)) as telegram_url,
        serve_app(openai_api.make_app(llm)) as llm_url,
    ):
        configure(workspace, telegram_url=telegram_url, llm_url=llm_url)
        async with gateway(workspace) as (_, process):
            llm.push(Reply(text="never delivered: the gateway dies first", delay_s=30))
            telegram.user_message(USER, USER, "first question")
            await eventually(lambda: llm.chat_requests)  # accepted, being answered
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        llm.steps.clear()
        telegram.user_message(USER, USER, "second question")  # sent while it is down
        async with gateway(workspace) as (api, _):
            await eventually(lambda: len(telegram.messages(USER)) >= 2, within_s=30)
            await asyncio.sleep(1.5)  # time for a duplicate to show up, if there were one
            answers = [m.plain for m in telegram.messages(USER)]
            assert answers == [
                "fake[fake-small]: first question",
                "fake[fake-small]: second question",
            ]
            assert (await api.get("/api/audit/verify")).json()["ok"] is True


async def test_a_slow_answer_streams_into_one_edited_message(world: World) -> None:
    text = "Streaming **answers** arrive piece by piece, " * 6
    world.llm.push(Reply(text=text, chunk_delay_s=0.5))
    world.telegram.user_message(USER, USER, "take your time")
    (shown,) = await eventually(lambda: world.telegram.messages(USER))
    assert shown.parse_mode is None  # the preview: plain text while it grows
    await eventually(lambda: shown.parse_mode == "HTML", within_s=20)
    assert len(world.telegram.messages(USER)) == 1
    assert shown.edits  # it grew in place
    assert "<b>answers</b>" in shown.text
    assert world.llm.chat_requests[-1].stream


@pytest.mark.slow
async def test_an_expired_approval_updates_its_message(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with world_for(workspace, monkeypatch) as world:
        text = world.workspace.read_text().replace(
            "approval_timeout_s = 600", "approval_timeout_s = 10"
        )
        world.workspace.write_text(text)
        await world.api.post("/api/config/reload")
        world.llm.push(
            Reply(tool_calls=(FakeToolCall("shell", {"argv": ["echo", "late"]}, id="c1"),)),
            Reply(text="Nobody approved it, so nothing ran."),
        )
        world.telegram.user_message(USER, USER, "run echo")
        ask = await eventually(
            lambda: next((m for m in world.telegram.messages(USER) if m.buttons), None)
        )
        await eventually(lambda: "Expired" in ask.plain, within_s=25)
        assert ask.buttons == []
        final = await eventually(
            lambda: (m := world.telegram.messages(USER))[-1].plain.startswith("Nobody") and m[-1]
        )
        assert final.plain == "Nobody approved it, so nothing ran."
        runs = (await world.api.get("/api/actions", params={"status": "expired"})).json()
        assert [a["kind"] for a in runs] == ["tool_call"]


async def test_a_rejection_from_the_chat_is_shown_and_nothing_runs(world: World) -> None:
    world.llm.push(
        Reply(tool_calls=(FakeToolCall("shell", {"argv": ["echo", "no"]}, id="c1"),)),
        Reply(text="Understood, I did not run it."),
    )
    world.telegram.user_message(USER, USER, "run echo")
    ask = await eventually(
        lambda: next((m for m in world.telegram.messages(USER) if m.buttons), None)
    )
    ((_, reject),) = ask.buttons
    world.telegram.callback(USER, APPROVER, ask.message_id, reject["callback_data"])
    await eventually(lambda: "Rejected" in ask.plain)
    assert "telegram:7" in ask.plain and ask.buttons == []
    final = await eventually(
        lambda: (m := world.telegram.messages(USER))[-1].plain.startswith("Understood") and m[-1]
    )
    assert final.plain == "Understood, I did not run it."
    runs = (await world.api.get("/api/actions", params={"status": "succeeded"})).json()
    assert not [a for a in runs if a["kind"] == "tool_call"]


async def test_a_failing_channel_is_visible_in_status_readyz_and_metrics(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with world_for(workspace, monkeypatch) as world:
        for _ in range(300):  # until the first poll has gone through
            if (await world.api.get("/api/channels")).json()["telegram"]["connected"]:
                break
            await asyncio.sleep(0.05)
        metrics = (await world.api.get("/metrics")).text
        assert 'switchboard_channel_connected{channel="telegram"} 1.0' in metrics
        assert (await world.api.get("/metrics", headers={"Authorization": ""})).status_code == 401
    monkeypatch.setenv("SB_TG_TOKEN", "999:WRONG-token")  # Telegram will refuse this bot
    telegram, llm = FakeTelegram(TOKEN), Script(api_key=LLM_KEY)
    async with (
        serve_app(telegram_app(telegram)) as telegram_url,
        serve_app(openai_api.make_app(llm)) as llm_url,
    ):
        text = workspace.read_text()
        workspace.write_text(text[: text.index("\n[providers.gpt]")])  # the config written above
        configure(workspace, telegram_url=telegram_url, llm_url=llm_url)
        async with app_client(workspace) as api:

            async def failing() -> dict[str, Any]:
                return dict((await api.get("/api/channels")).json()["telegram"])

            for _ in range(300):
                state = await failing()
                if state["consecutive_failures"] >= 1:
                    break
                await asyncio.sleep(0.05)
            assert state["connected"] is False and "token" in (state["last_error"] or "")
            ready = (await api.get("/readyz")).json()
            assert ready["status"] == "degraded"
            assert ready["checks"]["channels"]["telegram"]["connected"] is False
            metrics = (await api.get("/metrics")).text
            assert 'switchboard_channel_connected{channel="telegram"} 0.0' in metrics
            assert 'switchboard_channel_consecutive_failures{channel="telegram"}' in metrics
