"""``switchboard chat``: the console channel as a user runs it, in a real subprocess."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from tests.fakes import openai_api
from tests.fakes.llm_script import FakeToolCall, Reply, Script
from tests.fakes.server import serve_app
from tests.gateway.test_chat_api import KEY, configure

pytestmark = pytest.mark.slow


async def start_chat(config: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "chat",
        "--config",
        str(config),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "SB_TEST_OPENAI_KEY": KEY},
    )


async def read_until(process: asyncio.subprocess.Process, pattern: str, seen: list[str]) -> str:
    """Read stdout until ``pattern`` matches what was printed so far; returns the match."""
    assert process.stdout is not None
    regex = re.compile(pattern)
    while not (match := regex.search("".join(seen))):
        chunk = await asyncio.wait_for(process.stdout.read(4096), timeout=20)
        if not chunk:
            raise AssertionError(f"console ended before {pattern!r}: {''.join(seen)!r}")
        seen.append(chunk.decode())
    return match.group(0)


async def test_a_console_session_talks_through_the_orchestrator(workspace: Path) -> None:
    process = await start_chat(workspace, "--user", "alice")
    out, err = await asyncio.wait_for(
        process.communicate(b"hello console\n/status\n/model\n"), timeout=30
    )
    text = out.decode()
    assert process.returncode == 0, err.decode()
    assert "Switchboard console as console:alice" in text
    assert "hello console" in text  # the offline echo provider answers with the text
    assert "Conversation console:alice: 2 messages kept." in text
    assert "echo (default): " in text


async def test_a_console_user_approves_a_shell_call(workspace: Path) -> None:
    script = Script(api_key=KEY)
    script.push(
        Reply(
            text="Let me run it.",
            tool_calls=(FakeToolCall("shell", {"argv": ["echo", "console-ok"]}, id="c1"),),
        ),
        Reply(text="The tool said console-ok."),
    )
    async with serve_app(openai_api.make_app(script)) as url:
        configure(workspace, url)
        process = await start_chat(workspace, "--user", "bob")
        assert process.stdin is not None
        seen: list[str] = []
        process.stdin.write(b"please run echo\n")
        await process.stdin.drain()
        found = await read_until(process, r"\[critical\] shell .* id (\S+)", seen)
        approval_id = found.rsplit(" ", 1)[-1]
        assert "Let me run it." in "".join(seen)
        process.stdin.write(f"/approve {approval_id}\n".encode())
        await process.stdin.drain()
        await read_until(process, r"The tool said console-ok\.", seen)
        assert f"Approved by operator:console:bob: {approval_id}." in "".join(seen)
        process.stdin.close()
        assert await asyncio.wait_for(process.wait(), timeout=20) == 0
    tool_results = [t for r, t in script.chat_requests[-1].messages if r == "tool"]
    assert len(tool_results) == 1 and "console-ok" in tool_results[0]
