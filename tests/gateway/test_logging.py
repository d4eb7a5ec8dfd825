"""Structured logs: JSON lines with the conversation and action, secrets masked everywhere."""

from __future__ import annotations

import io
import json
import logging
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from core.log_context import log_context
from gateway.config_loader import load_config
from gateway.log_format import LogFormat, configure_logging
from gateway.redaction import SecretRedactor
from gateway.runtime import connect_database
from tests.fakes import openai_api
from tests.fakes.llm_script import FakeToolCall, Reply, Script
from tests.fakes.server import serve_app
from tests.gateway.conftest import app_client
from tests.gateway.test_run import start, wait_healthy

KEY = "sk-test-logging-0123456789"
SECRET = "sk-live-9f8e7d6c5b4a39281706"
# Quotes and a backslash: repr() and JSON would escape them, hiding the secret from a
# search-and-replace done after formatting.
QUOTED_SECRET = "pa'ss\"w\\ord-7Hq2"
_TOUCHED_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "sqlalchemy.engine.Engine")


@contextmanager
def logs(log_format: LogFormat, *, redactor: SecretRedactor | None = None) -> Iterator[io.StringIO]:
    """Everything logged inside, as ``switchboard run`` would write it; the old setup after."""
    root = logging.getLogger()
    saved_root = (list(root.handlers), root.level)
    saved = {
        name: (list(logging.getLogger(name).handlers), logging.getLogger(name).propagate)
        for name in _TOUCHED_LOGGERS
    }
    stream = io.StringIO()
    configure_logging(
        level="info", redactor=redactor or SecretRedactor(), log_format=log_format, stream=stream
    )
    try:
        yield stream
    finally:
        root.handlers[:] = saved_root[0]
        root.setLevel(saved_root[1])
        for name, (handlers, propagate) in saved.items():
            logging.getLogger(name).handlers[:] = handlers
            logging.getLogger(name).propagate = propagate


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """Every line parsed; a line that is not one JSON object fails the test."""
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines and all(isinstance(line, dict) for line in lines)
    for line in lines:
        assert {"ts", "level", "logger", "event", "message"} <= set(line), line
    return lines


@pytest.fixture
async def gw(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Script]:
    script = Script(api_key=KEY)
    monkeypatch.setenv("SB_TEST_OPENAI_KEY", KEY)
    async with serve_app(openai_api.make_app(script)) as url:
        text = workspace.read_text().replace("default = true\n", "")
        text += f"""
[providers.gpt]
type = "openai"
base_url = "{url}/v1"
api_key = "env:SB_TEST_OPENAI_KEY"
default_model = "fake-small"
default = true
"""
        workspace.write_text(text)
        yield script


async def test_a_chat_turn_logs_json_lines_with_conversation_and_action(
    gw: Script, workspace: Path
) -> None:
    gw.push(
        Reply(tool_calls=(FakeToolCall("current_time", {}, id="call_time"),)),
        Reply(text="It is noon."),
    )
    with logs("json") as stream:
        async with app_client(workspace) as api:
            answer = await api.post("/api/chat", json={"message": "what time?", "user": "alice"})
            assert answer.status_code == 200, answer.text
            chat_action = answer.json()["action_id"]
            actions = (await api.get("/api/actions", params={"conversation": "api:alice"})).json()
    (tool_action,) = [a["id"] for a in actions if a["kind"] == "tool_call"]
    lines = json_lines(stream)
    (ran,) = [line for line in lines if line["event"] == "tool_ran"]
    assert ran["logger"] == "switchboard.tools" and ran["level"] == "info"
    assert (ran["tool"], ran["conversation"], ran["action_id"]) == (
        "current_time",
        "api:alice",
        tool_action,
    )
    assert ran["ts"].endswith("Z") and "event=tool_ran" in ran["message"]
    (answered,) = [line for line in lines if line["event"] == "chat_answered"]
    assert (answered["conversation"], answered["action_id"]) == ("api:alice", chat_action)
    assert (answered["provider"], answered["model"], answered["tool_rounds"]) == (
        "gpt",
        "fake-small",
        "1",
    )
    assert (answered["input_tokens"], answered["output_tokens"]) == ("22", "14")  # two rounds


def test_any_library_line_carries_the_context() -> None:
    with logs("json") as stream:
        with log_context(conversation="telegram:42", action_id="a1b2"):
            logging.getLogger("somelib").warning("plain words, key=value-looking")
            with log_context(action_id="inner"):
                logging.getLogger("somelib").warning("nested")
        logging.getLogger("somelib").warning("outside")
    first, nested, outside = json_lines(stream)
    assert (first["conversation"], first["action_id"], first["event"]) == (
        "telegram:42",
        "a1b2",
        None,
    )
    assert "key" not in first  # only our own lines are parsed for pairs
    assert (nested["conversation"], nested["action_id"]) == ("telegram:42", "inner")
    assert "conversation" not in outside and "action_id" not in outside


async def test_text_lines_carry_the_context_too(gw: Script, workspace: Path) -> None:
    with logs("text") as stream:
        async with app_client(workspace) as api:
            answer = (await api.post("/api/chat", json={"message": "hi", "user": "bob"})).json()
    (line,) = [x for x in stream.getvalue().splitlines() if "event=chat_answered" in x]
    assert "level=INFO logger=switchboard.orchestrator" in line
    assert line.endswith(f"conversation=api:bob action_id={answer['action_id']}")


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_secrets_never_reach_the_log(log_format: LogFormat) -> None:
    redactor = SecretRedactor()
    redactor.add(SECRET)
    redactor.add(QUOTED_SECRET)
    log = logging.getLogger("switchboard.test")
    with logs(log_format, redactor=redactor) as stream:
        log.warning(f"event=in_message detail=the key is {SECRET}")
        log.warning("event=in_argument key=%s quoted=%r", SECRET, QUOTED_SECRET)
        log.warning("event=in_extra", extra={"api_key": SECRET, "nested": {"k": [QUOTED_SECRET]}})
        try:
            raise RuntimeError(f"upstream refused {SECRET} and {QUOTED_SECRET!r}")
        except RuntimeError:
            log.exception("event=in_exception")
    output = stream.getvalue()
    for secret in (SECRET, QUOTED_SECRET):
        for shown in (secret, repr(secret)[1:-1], json.dumps(secret)[1:-1]):
            assert shown not in output, (shown, output)
    assert output.count("[redacted]") >= 6
    assert "RuntimeError: upstream refused [redacted]" in output
    if log_format == "json":
        lines = {line["event"]: line for line in json_lines(stream)}
        assert lines["in_argument"]["key"] == "[redacted]"
        assert lines["in_argument"]["quoted"] == "[redacted]"
        assert lines["in_extra"]["api_key"] == "[redacted]"
        assert lines["in_extra"]["nested"] == {"k": ["[redacted]"]}
        assert "Traceback" in lines["in_exception"]["exception"]
    else:
        assert "api_key=[redacted]" in output


async def test_uvicorn_and_sqlalchemy_lines_are_json_too(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = workspace.read_text().replace("[storage]\n", "[storage]\necho_sql = true\n")
    workspace.write_text(text)
    with logs("json") as stream:
        async with serve_app(Starlette()) as url, httpx.AsyncClient() as client:
            assert (await client.get(url)).status_code == 404
        db = await connect_database(load_config(workspace), redactor=SecretRedactor())
        await db.close()
    lines = json_lines(stream)
    uvicorn = [line["message"] for line in lines if line["logger"] == "uvicorn.error"]
    assert any(message.startswith("Started server process") for message in uvicorn), lines
    sql = [line for line in lines if line["logger"] == "sqlalchemy.engine.Engine"]
    assert any("SELECT" in line["message"] for line in sql), lines
    # SQLAlchemy's echo would otherwise print its own unmasked copy to standard output.
    assert "SELECT" not in capsys.readouterr().out


@pytest.mark.slow
def test_run_log_format_flag_wins_over_the_config(workspace: Path) -> None:
    assert 'log_format = "text"' in workspace.read_text()
    process, port = start(workspace, "--log-format", "json")
    try:
        wait_healthy(process, port)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    (running,) = [line for line in lines if "Uvicorn running on" in line["message"]]
    assert running["logger"] == "uvicorn.error" and "color_message" not in running
    assert any(line["event"] == "stopped" for line in lines)
