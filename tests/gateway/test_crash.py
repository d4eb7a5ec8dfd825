"""kill -9 of a running gateway: pending approvals survive, interrupted actions never rerun."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from asyncio.subprocess import Process
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes import openai_api
from tests.fakes.llm_script import FakeToolCall, Reply, Script
from tests.fakes.server import serve_app
from tests.gateway.conftest import admin_token, free_port
from tests.gateway.test_chat_api import KEY, configure

pytestmark = pytest.mark.slow
# The tool's own process group outlives a kill -9 of the gateway (as it would under any
# supervisor that does not kill the whole cgroup); the test ends it by this odd duration.
ORPHAN_SECONDS = "27.25"


@asynccontextmanager
async def gateway(config: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Process]]:
    """``switchboard run`` as a real process, and a client on it; killed at the end."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "gateway", "run", "--config", str(config), "--port", str(port)),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "SB_TEST_OPENAI_KEY": KEY},
        start_new_session=True,  # its tools' children die with it at the end of the test
    )
    headers = {"Authorization": f"Bearer {admin_token(config)}"}
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=20
    ) as client:
        try:
            for _ in range(400):
                assert process.returncode is None, "the gateway exited during start-up"
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            else:
                raise AssertionError("the gateway did not start within 20 s")
            yield client, process
        finally:
            if process.returncode is None:
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()


async def kill9(process: Process) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    await process.wait()


async def shell_approval(client: httpx.AsyncClient, script: Script, *argv: str) -> dict[str, Any]:
    script.push(
        Reply(tool_calls=(FakeToolCall("shell", {"argv": list(argv)}, id="call_1"),)),
        Reply(text="finished"),
    )
    answer = (await client.post("/api/chat", json={"message": "run it"})).json()
    assert answer["status"] == "awaiting_approval", answer
    pending: dict[str, Any] = answer["pending_approvals"][0]
    return pending


@pytest.fixture
async def script(workspace: Path) -> AsyncIterator[Script]:
    script = Script(api_key=KEY)
    async with serve_app(openai_api.make_app(script)) as url:
        configure(workspace, url)
        text = workspace.read_text().replace('allow = ["echo"]', 'allow = ["echo", "sleep"]')
        workspace.write_text(text)
        yield script


async def test_a_pending_approval_survives_kill_9(workspace: Path, script: Script) -> None:
    async with gateway(workspace) as (client, process):
        pending = await shell_approval(client, script, "echo", "after-the-crash")
        await kill9(process)
    async with gateway(workspace) as (client, _):
        listed = (await client.get("/api/approvals")).json()
        assert [a["id"] for a in listed] == [pending["id"]]
        approved = await client.post(f"/api/approvals/{pending['id']}/approve")
        assert approved.status_code == 200
        actions = (await client.get("/api/actions", params={"status": "succeeded"})).json()
        shell = [a for a in actions if a["kind"] == "tool_call"]
        assert len(shell) == 1 and "after-the-crash" in shell[0]["result"]
        assert script.chat_requests[-1].messages[-1][0] == "tool"
        assert (await client.get("/api/audit/verify")).json()["ok"] is True


async def test_an_action_killed_while_running_is_never_run_again(
    workspace: Path, script: Script
) -> None:
    async with gateway(workspace) as (client, process):
        pending = await shell_approval(client, script, "sleep", ORPHAN_SECONDS)
        approving = asyncio.create_task(client.post(f"/api/approvals/{pending['id']}/approve"))
        for _ in range(400):
            running = (await client.get("/api/actions", params={"status": "running"})).json()
            if any(a["kind"] == "tool_call" for a in running):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the approved action never started")
        await kill9(process)
        with pytest.raises(httpx.TransportError):
            await approving
    async with gateway(workspace) as (client, _):
        action = (await client.get("/api/actions", params={"status": "failed"})).json()
        tool = [a for a in action if a["kind"] == "tool_call"]
        assert len(tool) == 1 and "interrupted by a restart" in tool[0]["error"]
        for _ in range(400):  # the sweeper tells the model, which answers
            if len(script.chat_requests) == 2:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"the turn was not resumed: {script.chat_requests}")
        tool_text = [t for r, t in script.chat_requests[-1].messages if r == "tool"][0]
        assert "interrupted by a restart" in tool_text
        records = (await client.get("/api/audit", params={"kind": "action.running"})).json()
        runs = [r for r in records["records"] if r["action_id"] == pending["action_id"]]
        assert len(runs) == 1  # started once, before the crash; never again
        assert (await client.get("/api/audit/verify")).json()["ok"] is True
    pkill = await asyncio.create_subprocess_exec("pkill", "-f", f"sleep {ORPHAN_SECONDS}")
    await pkill.wait()
