"""GET /metrics after real traffic: HTTP, providers, approvals, channels and the outbox.

Each test drives the gateway through its API (and Telegram through its fake), then parses
the scrape with prometheus-client's own parser and checks the numbers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.channels.test_telegram import USER, eventually, world_for
from tests.fakes import openai_api
from tests.fakes.llm_script import CutStream, Fail, FakeToolCall, Reply, Script
from tests.fakes.server import serve_app
from tests.gateway.conftest import app_client

KEY = "sk-test-metrics-0123456789"
HI = {"messages": [{"role": "user", "content": "hi"}]}


class Scrape:
    """One parsed scrape: sample values by name and labels."""

    def __init__(self, text: str) -> None:
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples = {
            (s.name, frozenset(s.labels.items())): s.value
            for family in self.families.values()
            for s in family.samples
        }

    def value(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, frozenset(labels.items())))


async def scrape(client: httpx.AsyncClient) -> Scrape:
    answer = await client.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return Scrape(answer.text)


@pytest.fixture
async def script(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Script]:
    """The OpenAI fake as provider ``gpt`` (one retry), falling back to ``backup`` (echo)."""
    script = Script(api_key=KEY)
    monkeypatch.setenv("SB_TEST_OPENAI_KEY", KEY)
    async with serve_app(openai_api.make_app(script)) as url:
        text = workspace.read_text().replace("default = true\n", "")
        text = text.replace("[providers.echo]", "[providers.backup]")
        text = text.replace("fallbacks = []", 'fallbacks = ["backup"]\ncircuit_failures = 2')
        text += f"""
[providers.gpt]
type = "openai"
base_url = "{url}/v1"
api_key = "env:SB_TEST_OPENAI_KEY"
default_model = "fake-small"
default = true
max_retries = 1

[tools.shell]
enabled = true
allow = ["echo"]
timeout_s = 5
"""
        workspace.write_text(text)
        yield script


@pytest.fixture
async def gw(script: Script, workspace: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(workspace) as client:
        yield client


async def test_provider_calls_retries_fallbacks_tokens_and_circuits(
    gw: httpx.AsyncClient, script: Script
) -> None:
    script.push(Fail(429, "slow down", retry_after=0.01), Reply(text="after a retry"))
    answer = await gw.post("/api/chat/multi", json=HI)
    assert answer.status_code == 200 and answer.json()["content"] == "after a retry"
    first = await scrape(gw)
    assert first.value("switchboard_provider_calls_total", provider="gpt", mode="chat") == 1
    assert (
        first.value("switchboard_provider_retries_total", provider="gpt", error="rate_limit") == 1
    )
    assert (
        first.value("switchboard_provider_errors_total", provider="gpt", error="rate_limit") is None
    )
    tokens = "switchboard_provider_tokens_total"
    assert first.value(tokens, provider="gpt", model="fake-small", direction="input") == 11
    assert first.value(tokens, provider="gpt", model="fake-small", direction="output") == 7
    assert first.value("switchboard_provider_circuit_state", provider="gpt") == 0
    assert first.value("switchboard_provider_circuit_state", provider="backup") == 0
    duration = "switchboard_provider_call_duration_seconds"
    assert first.value(f"{duration}_count", provider="gpt", mode="chat") == 1
    assert first.value(f"{duration}_bucket", provider="gpt", mode="chat", le="+Inf") == 1

    # Two server errors in a row: each answered by the fallback, and gpt's circuit opens.
    script.push(Fail(500, "boom"), Fail(500, "boom again"))
    for _ in range(2):
        fell_back = await gw.post("/api/chat/multi", json=HI)
        assert fell_back.status_code == 200 and fell_back.json()["provider"] == "backup"
    # With the circuit open, gpt is skipped without a request to it.
    skipped = await gw.post("/api/chat/multi", json=HI)
    assert skipped.json()["provider"] == "backup"
    assert len(script.chat_requests) == 4
    after = await scrape(gw)
    assert after.value("switchboard_provider_errors_total", provider="gpt", error="server") == 2
    assert (
        after.value("switchboard_provider_errors_total", provider="gpt", error="circuit_open") == 1
    )
    fallbacks = "switchboard_provider_fallbacks_total"
    assert after.value(fallbacks, provider="gpt", to="backup", error="server") == 2
    assert after.value(fallbacks, provider="gpt", to="backup", error="circuit_open") == 1
    assert after.value("switchboard_provider_calls_total", provider="gpt", mode="chat") == 4
    assert after.value("switchboard_provider_calls_total", provider="backup", mode="chat") == 3
    assert after.value("switchboard_provider_circuit_state", provider="gpt") == 2
    assert after.value(tokens, provider="backup", model="echo", direction="input")


async def test_streams_are_counted_apart_from_chat_calls(
    gw: httpx.AsyncClient, script: Script
) -> None:
    script.push(Reply(text="streamed words here"))
    async with gw.stream("POST", "/api/chat/multi", json={**HI, "stream": True}) as answer:
        body = "".join([chunk async for chunk in answer.aiter_text()])
    assert "event: done" in body
    metrics = await scrape(gw)
    assert metrics.value("switchboard_provider_calls_total", provider="gpt", mode="stream") == 1
    assert metrics.value("switchboard_provider_calls_total", provider="gpt", mode="chat") is None
    duration = "switchboard_provider_call_duration_seconds_count"
    assert metrics.value(duration, provider="gpt", mode="stream") == 1
    tokens = "switchboard_provider_tokens_total"
    assert metrics.value(tokens, provider="gpt", model="fake-small", direction="output") == 7
    # A stream cut off after its first words is a call that ended in an error.
    script.push(CutStream())
    async with gw.stream("POST", "/api/chat/multi", json={**HI, "stream": True}) as answer:
        body = "".join([chunk async for chunk in answer.aiter_text()])
    assert "event: error" in body
    metrics = await scrape(gw)
    assert metrics.value("switchboard_provider_calls_total", provider="gpt", mode="stream") == 2
    errors = "switchboard_provider_errors_total"
    assert metrics.value(errors, provider="gpt", error="stream_broken") == 1


async def test_http_requests_are_labelled_by_route_template(
    gw: httpx.AsyncClient, script: Script
) -> None:
    assert (await gw.post("/api/chat/multi", json=HI)).status_code == 200
    assert (await gw.post("/api/chat/multi", json={"messages": []})).status_code == 422
    for approval in ("abc123", "def456"):  # two ids, one template
        assert (await gw.post(f"/api/approvals/{approval}/approve")).status_code == 404
    anonymous = await gw.get("/api/approvals", headers={"Authorization": ""})
    assert anonymous.status_code == 401
    assert (await gw.get("/no/such/path/4711")).status_code == 404
    assert (await gw.get("/healthz")).status_code == 200
    metrics = await scrape(gw)
    requests = "switchboard_http_requests_total"
    assert metrics.value(requests, route="/api/chat/multi", method="POST", status="200") == 1
    assert metrics.value(requests, route="/api/chat/multi", method="POST", status="422") == 1
    template = "/api/approvals/{approval_id}/approve"
    assert metrics.value(requests, route=template, method="POST", status="404") == 2
    assert metrics.value(requests, route="/api/approvals", method="GET", status="401") == 1
    assert metrics.value(requests, route="unmatched", method="GET", status="404") == 1
    assert metrics.value(requests, route="/healthz", method="GET", status="200") == 1
    routes = {dict(labels).get("route") for name, labels in metrics.samples if name == requests}
    assert not any(r and ("abc123" in r or "4711" in r) for r in routes), routes
    latency = "switchboard_http_request_duration_seconds"
    assert metrics.value(f"{latency}_count", route="/api/chat/multi", method="POST") == 2
    assert (metrics.value(f"{latency}_sum", route="/api/chat/multi", method="POST") or 0) > 0
    # The scrape itself is counted by the next one.
    again = await scrape(gw)
    assert again.value(requests, route="/metrics", method="GET", status="200") == 1


async def test_pending_approvals_are_counted_from_the_database(
    gw: httpx.AsyncClient, script: Script
) -> None:
    assert (await scrape(gw)).value("switchboard_approvals_pending") == 0
    call = FakeToolCall("shell", {"argv": ["echo", "hi"]}, id="call_sh")
    script.push(Reply(tool_calls=(call,)), Reply(text="It said hi."))
    answer = (await gw.post("/api/chat", json={"message": "run echo", "user": "ops"})).json()
    (pending,) = answer["pending_approvals"]
    assert (await scrape(gw)).value("switchboard_approvals_pending") == 1
    assert (await gw.post(f"/api/approvals/{pending['id']}/approve")).status_code == 200
    assert (await scrape(gw)).value("switchboard_approvals_pending") == 0


async def test_channel_messages_in_and_out_and_the_outbox_backlog(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with world_for(workspace, monkeypatch) as world:
        world.telegram.user_message(USER, USER, "hello bot")
        await eventually(lambda: world.telegram.messages(USER))
        sent = "switchboard_channel_messages_sent_total"
        for _ in range(300):  # the fake shows the message before the outbox row is marked
            metrics = await scrape(world.api)
            if metrics.value(sent, channel="telegram"):
                break
            await asyncio.sleep(0.05)
        assert metrics.value("switchboard_channel_messages_received_total", channel="telegram") == 1
        assert metrics.value(sent, channel="telegram") == 1
        assert metrics.value("switchboard_outbox_backlog", channel="telegram") == 0
        # Telegram throttles the next answer for a minute: it waits in the outbox.
        world.telegram.fail_next("sendMessage", status=429, retry_after=60)
        world.telegram.user_message(USER, USER, "and again")

        async def backlog() -> float | None:
            return (await scrape(world.api)).value("switchboard_outbox_backlog", channel="telegram")

        for _ in range(300):
            if await backlog() == 1:
                break
            await asyncio.sleep(0.05)
        metrics = await scrape(world.api)
        assert metrics.value("switchboard_outbox_backlog", channel="telegram") == 1
        assert metrics.value("switchboard_channel_messages_received_total", channel="telegram") == 2
        assert metrics.value(sent, channel="telegram") == 1
        assert metrics.value("switchboard_channel_connected", channel="telegram") == 1
