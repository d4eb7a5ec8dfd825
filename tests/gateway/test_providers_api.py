"""The provider REST endpoints and POST /api/chat/multi, over loopback fakes of two APIs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gateway.cli import main
from gateway.config_loader import load_config
from tests.fakes import anthropic_api, ollama_api
from tests.fakes.llm_script import CutStream, Fail, Reply, Script
from tests.fakes.server import serve_app
from tests.gateway.conftest import app_client

KEY = "sk-ant-test-0123456789abcdef"


@dataclass
class Fakes:
    claude: Script
    local: Script


@pytest.fixture
async def fakes(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Fakes]:
    """An Anthropic fake as the default provider, an Ollama fake as its fallback."""
    claude, local = Script(api_key=KEY), Script()
    monkeypatch.setenv("SB_TEST_ANTHROPIC_KEY", KEY)
    async with (
        serve_app(anthropic_api.make_app(claude)) as claude_url,
        serve_app(ollama_api.make_app(local)) as local_url,
    ):
        text = workspace.read_text().replace("default = true\n", "")
        text = text.replace(
            "fallbacks = []",
            'fallbacks = ["local"]',
        )
        text += f"""
[providers.claude]
type = "anthropic"
base_url = "{claude_url}"
api_key = "env:SB_TEST_ANTHROPIC_KEY"
default_model = "fake-small"
default = true
max_retries = 1

[providers.local]
type = "ollama"
base_url = "{local_url}"
default_model = "fake-small"
"""
        workspace.write_text(text)
        yield Fakes(claude, local)


@pytest.fixture
async def gw(fakes: Fakes, workspace: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(workspace) as client:
        yield client


def sse(body: str) -> list[tuple[str, dict[str, object]]]:
    events = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


async def test_providers_are_listed_without_keys(gw: httpx.AsyncClient) -> None:
    response = await gw.get("/api/providers")
    assert response.status_code == 200
    views = {v["name"]: v for v in response.json()}
    assert set(views) == {"echo", "claude", "local"}
    claude = views["claude"]
    assert claude["type"] == "anthropic" and claude["is_default"] is True
    assert claude["healthy"] is True and claude["default_model"] == "fake-small"
    assert set(claude) == {
        "name",
        "type",
        "base_url",
        "default_model",
        "is_default",
        "healthy",
        "source",
        "circuit",
    }
    assert KEY not in response.text


async def test_health_and_models(gw: httpx.AsyncClient, fakes: Fakes) -> None:
    health = (await gw.get("/api/providers/health")).json()
    assert health["claude"]["healthy"] is True and health["claude"]["latency_ms"] >= 0
    assert health["echo"] == {"healthy": True, "latency_ms": 0.0}
    assert fakes.claude.chat_requests == []
    every = (await gw.get("/api/providers/models")).json()
    assert "claude/fake-large" in every["models"] and "echo/echo" in every["models"]
    assert every["errors"] == {}
    one = (await gw.get("/api/providers/local/models")).json()
    assert one == {"provider": "local", "models": ["fake-small", "fake-large"]}


async def test_unknown_providers_are_404_in_the_error_shape(gw: httpx.AsyncClient) -> None:
    for response in (
        await gw.get("/api/providers/clade/models"),
        await gw.post("/api/providers/clade/default"),
        await gw.post(
            "/api/chat/multi",
            json={"messages": [{"role": "user", "content": "x"}], "provider": "clade"},
        ),
    ):
        assert response.status_code == 404
        error = response.json()["error"]
        assert error["code"] == "provider_not_found"
        assert "did you mean 'claude'" in error["message"]


async def test_chat_multi_answers_with_provider_and_model(gw: httpx.AsyncClient) -> None:
    response = await gw.post(
        "/api/chat/multi",
        json={
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"},
            ]
        },
    )
    assert response.status_code == 200
    assert response.json() == {
        "content": "fake[fake-small]: hi",
        "tool_calls": [],
        "provider": "claude",
        "model": "fake-small",
        "finish_reason": "stop",
        "usage": {"input_tokens": 11, "output_tokens": 7, "total_tokens": 18},
    }
    echoed = await gw.post(
        "/api/chat/multi",
        json={"messages": [{"role": "user", "content": "hi"}], "model": "echo/echo"},
    )
    assert echoed.json()["content"] == "echo: hi"


async def test_chat_multi_falls_back_and_says_so(gw: httpx.AsyncClient, fakes: Fakes) -> None:
    fakes.claude.push(Fail(500, "upstream exploded"))
    response = await gw.post(
        "/api/chat/multi", json={"messages": [{"role": "user", "content": "hi"}]}
    )
    assert response.json()["provider"] == "local"


async def test_a_provider_error_without_fallback_is_a_json_error(
    gw: httpx.AsyncClient, fakes: Fakes
) -> None:
    fakes.claude.push(Fail(400, "messages: field required"))
    response = await gw.post(
        "/api/chat/multi", json={"messages": [{"role": "user", "content": "hi"}]}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "provider_bad_request"
    assert "field required" in response.json()["error"]["message"]


async def test_chat_multi_streams_server_sent_events(gw: httpx.AsyncClient, fakes: Fakes) -> None:
    fakes.claude.push(Reply(text="several streamed words"))
    response = await gw.post(
        "/api/chat/multi", json={"messages": [{"role": "user", "content": "hi"}], "stream": True}
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse(response.text)
    assert "".join(str(d["text"]) for e, d in events if e == "delta") == "several streamed words"
    name, done = events[-1]
    assert name == "done"
    assert done == {
        "provider": "claude",
        "model": "fake-small",
        "finish_reason": "stop",
        "usage": {"input_tokens": 11, "output_tokens": 7, "total_tokens": 18},
    }


async def test_a_stream_broken_midway_ends_with_an_error_event(
    gw: httpx.AsyncClient, fakes: Fakes
) -> None:
    fakes.claude.push(CutStream(Reply(text="this will be cut"), after_chunks=1))
    response = await gw.post(
        "/api/chat/multi", json={"messages": [{"role": "user", "content": "hi"}], "stream": True}
    )
    events = sse(response.text)
    assert events[0][0] == "delta"
    name, error = events[-1]
    assert name == "error" and error["code"] == "provider_stream_broken"
    assert fakes.local.chat_requests == []


async def test_a_stream_that_cannot_start_is_a_json_error(
    gw: httpx.AsyncClient, fakes: Fakes
) -> None:
    fakes.claude.push(Fail(401, "invalid x-api-key"))
    response = await gw.post(
        "/api/chat/multi",
        json={
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
            "provider": "claude",
        },
    )
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "provider_auth"


async def test_chat_multi_validates_its_body(gw: httpx.AsyncClient) -> None:
    empty = await gw.post("/api/chat/multi", json={"messages": []})
    assert empty.status_code == 422
    wrong_role = await gw.post(
        "/api/chat/multi", json={"messages": [{"role": "robot", "content": "x"}]}
    )
    assert wrong_role.status_code == 422
    assert "messages.0.role" in wrong_role.json()["error"]["message"]
    not_json = await gw.post(
        "/api/chat/multi", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400 and not_json.json()["error"]["code"] == "invalid_json"
    anonymous = await gw.post(
        "/api/chat/multi",
        json={"messages": [{"role": "user", "content": "x"}]},
        headers={"Authorization": ""},
    )
    assert anonymous.status_code == 401


async def test_tools_round_trip_through_the_api(gw: httpx.AsyncClient, fakes: Fakes) -> None:
    from tests.fakes.llm_script import FakeToolCall

    fakes.claude.push(Reply(tool_calls=(FakeToolCall("lookup", {"q": "switchboard"}),)))
    tools = [
        {
            "name": "lookup",
            "description": "search",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        }
    ]
    first = (
        await gw.post(
            "/api/chat/multi",
            json={"messages": [{"role": "user", "content": "find it"}], "tools": tools},
        )
    ).json()
    assert first["finish_reason"] == "tool_calls"
    (call,) = first["tool_calls"]
    assert call["name"] == "lookup" and call["arguments"] == {"q": "switchboard"}
    fakes.claude.push(Reply(text="found it"))
    second = await gw.post(
        "/api/chat/multi",
        json={
            "tools": tools,
            "messages": [
                {"role": "user", "content": "find it"},
                {"role": "assistant", "content": "", "tool_calls": [call]},
                {
                    "role": "tool",
                    "tool_call_id": call["id"],
                    "name": "lookup",
                    "content": "a gateway",
                },
            ],
        },
    )
    assert second.json()["content"] == "found it"


async def test_register_stores_the_key_in_the_vault_and_survives_restart(
    fakes: Fakes, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    claude_url = load_config(workspace).config.providers["claude"].base_url
    async with app_client(workspace) as gw:
        response = await gw.post(
            "/api/providers/register",
            json={
                "name": "second",
                "type": "anthropic",
                "base_url": claude_url,
                "api_key": KEY,
                "default_model": "fake-large",
            },
        )
        assert response.status_code == 201, response.text
        assert response.json()["source"] == "registered"
        assert KEY not in response.text
        answer = await gw.post(
            "/api/chat/multi",
            json={"messages": [{"role": "user", "content": "hi"}], "provider": "second"},
        )
        assert answer.json()["model"] == "fake-large"
        again = await gw.post(
            "/api/providers/register",
            json={"name": "second", "type": "ollama", "base_url": "http://127.0.0.1:1"},
        )
        assert again.status_code == 409
        ledger = (await gw.get("/api/actions", params={"level": "high"})).json()
        assert [(a["kind"], a["status"]) for a in ledger] == [
            ("admin", "failed"),
            ("admin", "succeeded"),
        ]
        assert ledger[1]["payload"]["change"] == "provider.register"
        assert ledger[1]["requester"] == "operator:api"
        assert "already exists" in ledger[0]["error"]
        assert KEY not in json.dumps(ledger)
    database = (workspace.parent / "data" / "switchboard.db").read_bytes()
    wal = workspace.parent / "data" / "switchboard.db-wal"
    assert KEY.encode() not in database + (wal.read_bytes() if wal.exists() else b"")
    capsys.readouterr()
    assert await asyncio.to_thread(main, ["vault", "list", "--config", str(workspace)]) == 0
    assert "provider.second.api_key" in capsys.readouterr().out
    async with app_client(workspace) as gw:
        names = [v["name"] for v in (await gw.get("/api/providers")).json()]
        assert "second" in names


async def test_register_rejects_bad_input_clearly(gw: httpx.AsyncClient) -> None:
    typo = await gw.post("/api/providers/register", json={"name": "x", "type": "antropic"})
    assert typo.status_code == 400
    assert "did you mean 'anthropic'" in typo.json()["error"]["message"]
    keyless = await gw.post("/api/providers/register", json={"name": "x", "type": "openai"})
    assert keyless.status_code == 400 and "api_key" in keyless.json()["error"]["message"]
    bad_name = await gw.post("/api/providers/register", json={"name": "Bad Name", "type": "ollama"})
    assert bad_name.status_code == 400
    taken = await gw.post("/api/providers/register", json={"name": "claude", "type": "ollama"})
    assert taken.status_code == 409


async def test_the_default_can_be_changed_and_persists_until_the_file_changes_it(
    fakes: Fakes, workspace: Path
) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}]}
    async with app_client(workspace) as gw:
        assert (await gw.post("/api/providers/local/default")).json() == {"default": "local"}
        assert (await gw.post("/api/chat/multi", json=body)).json()["provider"] == "local"
    async with app_client(workspace) as gw:
        assert (await gw.post("/api/chat/multi", json=body)).json()["provider"] == "local"
        # The operator names another default in the file: that newer intent wins.
        text = workspace.read_text().replace("default = true\n", "")
        text = text.replace(
            '[providers.echo]\ntype = "echo"\n', '[providers.echo]\ntype = "echo"\ndefault = true\n'
        )
        workspace.write_text(text)
        reloaded = (await gw.post("/api/config/reload")).json()
        assert reloaded["applied"] is True, reloaded
        assert (await gw.post("/api/chat/multi", json=body)).json()["provider"] == "echo"


async def test_a_provider_added_to_the_file_appears_without_restart(
    gw: httpx.AsyncClient, workspace: Path
) -> None:
    workspace.write_text(workspace.read_text() + '\n[providers.extra]\ntype = "echo"\n')
    assert (await gw.post("/api/config/reload")).json()["applied"] is True
    names = [v["name"] for v in (await gw.get("/api/providers")).json()]
    assert "extra" in names


async def test_the_cli_agrees_with_the_api(
    gw: httpx.AsyncClient, workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The CLI runs its own event loop: a thread, so this loop keeps serving the fakes.
    def cli(*argv: str) -> int:
        return main([*argv, "--config", str(workspace)])

    capsys.readouterr()
    assert await asyncio.to_thread(cli, "providers", "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [v["name"] for v in listed] == ["echo", "claude", "local"]
    assert next(v for v in listed if v["name"] == "claude")["is_default"] is True
    api_view = (await gw.get("/api/providers")).json()
    assert [(v["name"], v["type"], v["is_default"]) for v in api_view] == [
        (v["name"], v["type"], v["is_default"]) for v in listed
    ]
    assert await asyncio.to_thread(cli, "providers", "models", "local", "--json") == 0
    from_cli = json.loads(capsys.readouterr().out)
    assert from_cli == (await gw.get("/api/providers/local/models")).json()
    assert from_cli["models"] == ["fake-small", "fake-large"]
    assert await asyncio.to_thread(cli, "providers", "health") == 0
    out = capsys.readouterr().out
    assert "claude" in out and "healthy" in out
    assert KEY not in out


async def test_register_with_a_key_but_no_vault_says_how_to_fix_it(workspace: Path) -> None:
    config = workspace.read_text().replace('vault_key = "file:./data/vault.key"', "")
    workspace.write_text(config)
    async with app_client(workspace) as api:
        response = await api.post(
            "/api/providers/register",
            json={"name": "extra", "type": "openai", "api_key": "sk-not-stored-anywhere-123"},
        )
        listed = await api.get("/api/providers")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "vault_not_configured"
    assert "vault_key" in error["message"]
    assert "extra" not in {p["name"] for p in listed.json()}
