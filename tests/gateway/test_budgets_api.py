"""Budgets end to end: POST /api/chat over the OpenAI fake, GET /api/usage, /status, reload."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from tests.fakes import openai_api
from tests.fakes.llm_script import FakeToolCall, Reply, Script
from tests.fakes.server import serve_app
from tests.gateway.conftest import app_client
from tests.gateway.test_reload import edit, wait_for

KEY = "sk-test-0123456789abcdef"
# The fake reports 11 input + 7 output tokens per call unless told otherwise.
TOKENS_PER_CALL = 18


def configure(workspace: Path, url: str, **budgets: int) -> None:
    """The OpenAI fake as the default provider, and the given ``[budgets]`` values."""
    text = workspace.read_text().replace("default = true\n", "")
    for key, value in budgets.items():
        text, count = re.subn(rf"(?m)^{key} = 0\b", f"{key} = {value}", text)
        assert count == 1, key
    text += f"""
[providers.gpt]
type = "openai"
base_url = "{url}/v1"
api_key = "env:SB_TEST_OPENAI_KEY"
default_model = "fake-small"
default = true
max_retries = 0
"""
    workspace.write_text(text)


@pytest.fixture
async def script(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Script, str]]:
    script = Script(api_key=KEY)
    monkeypatch.setenv("SB_TEST_OPENAI_KEY", KEY)
    async with serve_app(openai_api.make_app(script)) as url:
        yield script, url


def sse_events(text: str) -> list[tuple[str, Any]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


async def test_a_used_up_budget_refuses_the_next_message_without_asking_the_model(
    workspace: Path, script: tuple[Script, str]
) -> None:
    fake, url = script
    configure(workspace, url, user_tokens_per_day=TOKENS_PER_CALL - 3)
    async with app_client(workspace) as gw:
        first = await gw.post("/api/chat", json={"message": "hello", "user": "alice"})
        assert first.status_code == 200, first.text  # under budget when it started
        assert len(fake.chat_requests) == 1

        second = await gw.post("/api/chat", json={"message": "and again", "user": "alice"})
        assert second.status_code == 429
        error = second.json()["error"]
        assert error["code"] == "budget_exceeded"
        assert error["message"].startswith(
            "You have used up your daily token budget: 18 of 15 tokens today (UTC). It resets at "
        )
        assert "ask an operator to raise [budgets] user_tokens_per_day" in error["message"]
        assert 1 <= int(second.headers["Retry-After"]) <= 86_400
        streamed = await gw.post(
            "/api/chat", json={"message": "stream it", "user": "alice", "stream": True}
        )
        ((kind, data),) = sse_events(streamed.text)
        assert (kind, data["code"]) == ("error", "budget_exceeded")
        assert len(fake.chat_requests) == 1  # the model was not asked again

        # Commands still work, and /status says why.
        status = await gw.post("/api/chat", json={"message": "/status", "user": "alice"})
        assert status.status_code == 200 and status.json()["status"] == "command"
        reply = status.json()["reply"]
        assert "Your usage today (UTC): 18 of 15 tokens (0 left), 1 request (no limit)" in reply
        assert "Budget used up ([budgets] user_tokens_per_day)" in reply
        help_answer = await gw.post("/api/chat", json={"message": "/help", "user": "alice"})
        assert help_answer.json()["status"] == "command"

        # Another user is not affected.
        bob = await gw.post("/api/chat", json={"message": "hi", "user": "bob"})
        assert bob.status_code == 200 and len(fake.chat_requests) == 2

        audit = (await gw.get("/api/audit", params={"kind": "budget.exceeded"})).json()
        records = audit["records"]
        assert [r["actor"] for r in records] == ["api:alice", "api:alice"]
        assert records[0]["data"]["budget"] == "user_tokens_per_day"
        assert (records[0]["data"]["limit"], records[0]["data"]["used"]) == (15, 18)


async def test_usage_counts_every_provider_call_of_a_turn_and_streams(
    workspace: Path, script: tuple[Script, str]
) -> None:
    fake, url = script
    configure(
        workspace,
        url,
        user_tokens_per_day=1000,
        user_requests_per_day=10,
        conversation_tokens_per_month=5000,
    )
    async with app_client(workspace) as gw:
        # One turn, two calls: a tool round (current_time is on in the sample config), then text.
        fake.push(
            Reply(tool_calls=(FakeToolCall("current_time", {}),), input_tokens=30, output_tokens=5),
            Reply(text="It is late.", input_tokens=40, output_tokens=10),
        )
        turn = await gw.post(
            "/api/chat", json={"message": "time?", "user": "alice", "conversation": "ops"}
        )
        assert turn.json()["reply"] == "It is late."
        fake.push(Reply(text="streamed answer", input_tokens=20, output_tokens=3))
        stream = await gw.post("/api/chat", json={"message": "go", "user": "alice", "stream": True})
        assert sse_events(stream.text)[-1][0] == "done"
        assert len(fake.chat_requests) == 3

        alice = (await gw.get("/api/usage", params={"user": "api:alice"})).json()
        (mine,) = alice["users"]
        assert alice["conversations"] == []
        assert mine["user"] == "api:alice"
        assert mine["today"] == {
            "input_tokens": 90,
            "output_tokens": 18,
            "total_tokens": 108,
            "requests": 3,
        }
        assert mine["month"] == mine["today"]
        assert mine["limits"] == {
            "tokens_per_day": 1000,
            "tokens_per_month": None,
            "requests_per_day": 10,
        }
        assert mine["remaining"] == {
            "tokens_per_day": 892,
            "tokens_per_month": None,
            "requests_per_day": 7,
        }
        assert mine["exhausted"] is False
        assert alice["day_resets_at"].endswith("T00:00:00+00:00")

        ops = (await gw.get("/api/usage", params={"conversation": "api:ops"})).json()
        (room,) = ops["conversations"]
        assert room["conversation"] == "api:ops" and room["month"]["total_tokens"] == 85
        assert room["limits"]["tokens_per_month"] == 5000
        assert room["remaining"]["tokens_per_month"] == 4915

        await gw.post("/api/chat", json={"message": "hi", "user": "bob"})
        top = (await gw.get("/api/usage")).json()
        assert [u["user"] for u in top["users"]] == ["api:alice", "api:bob"]
        assert [c["conversation"] for c in top["conversations"]] == [
            "api:ops",
            "api:alice",
            "api:bob",
        ]
        assert [u["user"] for u in (await gw.get("/api/usage?limit=1")).json()["users"]] == [
            "api:alice"
        ]

        bad = await gw.get("/api/usage", params={"user": "alice"})
        assert bad.status_code == 422
        assert bad.json()["error"]["message"].startswith("user: 'alice' is not an identity")
        no_token = await gw.get("/api/usage", headers={"Authorization": "Bearer wrong"})
        assert no_token.status_code == 401


async def test_a_raised_limit_applies_after_a_config_edit(
    workspace: Path, script: tuple[Script, str]
) -> None:
    fake, url = script
    configure(workspace, url, user_requests_per_day=1)
    async with app_client(workspace) as gw:
        assert (await gw.post("/api/chat", json={"message": "one"})).status_code == 200
        refused = await gw.post("/api/chat", json={"message": "two"})
        assert refused.status_code == 429
        assert "daily request limit: 1 of 1 model requests" in refused.json()["error"]["message"]

        edit(workspace, "user_requests_per_day = 1 ", "user_requests_per_day = 5 ")
        await wait_for(
            "/api/usage?user=api:admin",
            gw,
            lambda body: body["users"][0]["limits"]["requests_per_day"] == 5,
        )
        again = await gw.post("/api/chat", json={"message": "three"})
        assert again.status_code == 200, again.text
        assert len(fake.chat_requests) == 2


async def test_usage_cli_prints_the_report(
    workspace: Path, script: tuple[Script, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = script
    configure(workspace, url, user_tokens_per_day=100)
    async with app_client(workspace) as gw:
        await gw.post("/api/chat", json={"message": "hello", "user": "alice"})
    config = str(workspace)
    code = await asyncio.to_thread(main, ["usage", "--config", config, "--user", "api:alice"])
    assert code == 0
    out = capsys.readouterr().out
    assert "user api:alice\n" in out
    assert "today: 18 tokens (11 in, 7 out), 1 requests; tokens_per_day: 100 (82 left)" in out
    assert await asyncio.to_thread(main, ["usage", "--config", config, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [u["user"] for u in report["users"]] == ["api:alice"]
    assert report["users"][0]["remaining"]["tokens_per_day"] == 82
    assert await asyncio.to_thread(main, ["usage", "--config", config, "--user", "alice"]) == 2
    assert "--user: 'alice' must be of the form platform:id" in capsys.readouterr().err
