"""Two real gateway replicas on one PostgreSQL database, one of them killed with kill -9.

Both run ``switchboard run`` with Telegram in polling mode against the Bot API fake and the
OpenAI fake as the model. What must hold (issue #8): one replica polls at a time and the
other takes the session over when it dies; every accepted message is answered exactly
once, the dead replica's cut-off turns included; an approval decided through both replicas
at once runs once; the audit chain written by both verifies.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

import channels.telegram  # noqa: F401  (aiogram's slow import at collection, not in a test)
from tests.channels.test_telegram import APPROVER, LLM_KEY, TOKEN, configure, eventually
from tests.fakes import openai_api
from tests.fakes.llm_script import FakeToolCall, Reply, Script
from tests.fakes.server import serve_app
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.telegram_api import make_app as telegram_app
from tests.gateway.test_crash import gateway, kill9

pytestmark = pytest.mark.slow

FIRST_CHAT = 1000
HOOK_SECRET = "hook-secret_123"  # the webhook secret token (SB_TG_SECRET) in webhook mode


async def run_cli(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode()


async def telegram_state(api: httpx.AsyncClient) -> str:
    state: str = (await api.get("/api/channels")).json()["telegram"]["state"]
    return state


async def wait_for_state(api: httpx.AsyncClient, prefix: str) -> None:
    for _ in range(300):
        if (await telegram_state(api)).startswith(prefix):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"telegram never reached {prefix!r}: {await telegram_state(api)!r}")


def send_load(telegram: FakeTelegram, chats: range) -> None:
    for chat in chats:
        telegram.user_message(chat, chat, f"load {chat}")


@asynccontextmanager
async def fakes_and_postgres(
    workspace: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch, *, mode: str
) -> AsyncIterator[tuple[FakeTelegram, Script]]:
    """The Telegram and OpenAI fakes, and the workspace configured for them on ``pg_url``
    (migrated), for replicas to be started on."""
    monkeypatch.setenv("SB_TG_TOKEN", TOKEN)
    monkeypatch.setenv("SB_TG_SECRET", HOOK_SECRET)
    monkeypatch.setenv("SB_TEST_OPENAI_KEY", LLM_KEY)
    telegram, llm = FakeTelegram(TOKEN), Script(api_key=LLM_KEY)
    async with (
        serve_app(telegram_app(telegram)) as telegram_url,
        serve_app(openai_api.make_app(llm)) as llm_url,
    ):
        configure(workspace, telegram_url=telegram_url, llm_url=llm_url, mode=mode)
        text = re.sub(r'(?m)^url = "sqlite[^"]*"', f'url = "{pg_url}"', workspace.read_text())
        workspace.write_text(text)
        code, out = await run_cli("migrate", "--config", str(workspace))
        assert code == 0, out
        yield telegram, llm


async def test_kill_9_of_a_replica_under_load_loses_nothing_and_answers_once(
    workspace: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with fakes_and_postgres(workspace, pg_url, monkeypatch, mode="polling") as (
        telegram,
        llm,
    ):
        async with gateway(workspace) as (api_a, process_a):
            await wait_for_state(api_a, "connected")
            async with gateway(workspace) as (api_b, _):
                await wait_for_state(api_b, "standby")  # one poller only
                listed = (await api_a.get("/api/replicas")).json()
                gateways = [r for r in listed["replicas"] if r["role"] == "gateway"]
                assert [r["alive"] for r in gateways] == [True, True]
                assert listed["this"] == gateways[0]["id"]  # A started first
                await approval_decided_through_both_runs_once(telegram, llm, api_a, api_b)

                # Answered while both run; then cut off in the middle of their turns.
                send_load(telegram, range(FIRST_CHAT, FIRST_CHAT + 10))
                await eventually(lambda: answered(telegram, 10) == 10, within_s=30)
                asked = len(llm.chat_requests)
                llm.default_delay_s = 30.0  # the model is slow: these turns are in flight
                send_load(telegram, range(FIRST_CHAT + 10, FIRST_CHAT + 25))
                await eventually(lambda: len(llm.chat_requests) >= asked + 15, within_s=30)
                await kill9(process_a)
                llm.default_delay_s = 0.05
                send_load(telegram, range(FIRST_CHAT + 25, FIRST_CHAT + 40))

                await wait_for_state(api_b, "connected")  # the standby took the session
                await eventually(lambda: answered(telegram, 40) == 40, within_s=60)
                await asyncio.sleep(2.0)  # time for a duplicate to show up, if there were one
                for chat in range(FIRST_CHAT, FIRST_CHAT + 40):
                    texts = [m.plain for m in telegram.messages(chat)]
                    assert texts == [f"fake[fake-small]: load {chat}"], (chat, texts)
                assert (await api_b.get("/api/audit/verify")).json()["ok"] is True
                left = (await api_b.get("/api/replicas")).json()
                assert [r["id"] for r in left["replicas"]] == [left["this"]]  # A's row taken
        code, out = await run_cli("audit", "verify", "--config", str(workspace))
        assert code == 0, out


async def test_webhooks_spread_over_two_replicas_are_answered_once_each(
    workspace: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = {"X-Telegram-Bot-Api-Secret-Token": HOOK_SECRET, "Authorization": ""}
    async with fakes_and_postgres(workspace, pg_url, monkeypatch, mode="webhook") as (
        telegram,
        llm,
    ):
        async with gateway(workspace) as (api_a, _), gateway(workspace) as (api_b, _):
            # Both serve the webhook (no standby): it is not a single session.
            await wait_for_state(api_a, "connected")
            await wait_for_state(api_b, "connected")
            chats = range(FIRST_CHAT, FIRST_CHAT + 30)
            posts = []
            for chat in chats:
                update = telegram.user_message(chat, chat, f"load {chat}")
                replicas = (api_a, api_b) if chat % 2 else (api_b, api_a)
                posts.append(replicas[0].post("/telegram/webhook", json=update, headers=hook))
                if chat % 3 == 0:  # delivered twice, to both (a retry through the balancer)
                    posts.append(replicas[1].post("/telegram/webhook", json=update, headers=hook))
            answers = await asyncio.gather(*posts)
            assert {a.status_code for a in answers} == {200}
            await eventually(lambda: answered(telegram, 30) == 30, within_s=30)
            await asyncio.sleep(1.0)  # time for a duplicate to show up, if there were one
            for chat in chats:
                texts = [m.plain for m in telegram.messages(chat)]
                assert texts == [f"fake[fake-small]: load {chat}"], (chat, texts)
            assert len(llm.chat_requests) == 30  # each message handled by one replica


def answered(telegram: FakeTelegram, count: int) -> int:
    return sum(1 for chat in range(FIRST_CHAT, FIRST_CHAT + count) if telegram.messages(chat))


async def approval_decided_through_both_runs_once(
    telegram: FakeTelegram, llm: Script, api_a: httpx.AsyncClient, api_b: httpx.AsyncClient
) -> None:
    llm.push(
        Reply(tool_calls=(FakeToolCall("shell", {"argv": ["echo", "once"]}, id="call_1"),)),
        Reply(text="finished"),
    )
    telegram.user_message(APPROVER, APPROVER, "run it")

    async def pending() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = (await api_b.get("/api/approvals")).json()
        return found

    for _ in range(300):
        if approvals := await pending():
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("no approval was requested")
    (approval,) = approvals
    path = f"/api/approvals/{approval['id']}/approve"
    answers = await asyncio.gather(api_a.post(path), api_b.post(path))
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    await eventually(
        lambda: [m.plain for m in telegram.messages(APPROVER) if m.plain == "finished"],
        within_s=30,
    )
    action_id = approval["action_id"]
    page = await api_b.get("/api/audit", params={"kind": "action.running", "limit": 500})
    runs = [r for r in page.json()["records"] if r["action_id"] == action_id]
    assert len(runs) == 1, runs
    assert (await api_a.get(f"/api/actions/{action_id}")).json()["status"] == "succeeded"
