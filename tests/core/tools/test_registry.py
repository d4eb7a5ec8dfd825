"""The registry: schema validation with paths, only enabled tools offered, capped results."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from core.config import HttpGetTool, ShellTool, ToolsSection, ToolSwitch
from core.errors import ToolError
from core.ports import Note, Tool
from core.tools import RESULT_MAX_BYTES, ToolRegistry, build_tools
from core.tools.registry import cap_text
from core.tools.shell import Shell
from core.types import SecurityLevel, ToolContext

ALL_ON = ToolsSection(
    current_time=ToolSwitch(enabled=True),
    remember=ToolSwitch(enabled=True),
    recall=ToolSwitch(enabled=True),
    http_get=HttpGetTool(enabled=True, allow_hosts=("example.com",)),
    shell=ShellTool(enabled=True, allow=("echo",)),
)


class NoNotes:
    """A NotesStore that must not be used by these tests."""

    async def add(self, *, conversation: str, text: str, created_at: datetime) -> Note:
        raise AssertionError("not used")

    async def search(
        self, *, conversation: str, query: str | None = None, limit: int = 10
    ) -> list[Note]:
        raise AssertionError("not used")


class Echo:
    """A test tool that answers with a given text."""

    name = "echo_tool"
    description = "answers with its text"
    parameters: Mapping[str, Any] = {
        "type": "object",
        "properties": {"text": {"type": "string"}, "times": {"type": "integer", "minimum": 1}},
        "required": ["text"],
        "additionalProperties": False,
    }
    level = SecurityLevel.LOW

    async def run(self, arguments: Mapping[str, Any], *, context: ToolContext) -> str:
        return str(arguments["text"]) * int(arguments.get("times", 1))


def shell_registry() -> ToolRegistry:
    registry = ToolRegistry()
    registry.register(Shell(ShellTool(enabled=True, allow=("echo",))))
    return registry


def test_a_wrong_type_names_the_failing_path() -> None:
    with pytest.raises(ToolError) as caught:
        shell_registry().validate("shell", {"argv": [3]})
    assert str(caught.value) == "shell: arguments.argv[0]: 3 is not of type 'string'"
    assert caught.value.tool == "shell"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "shell: arguments: 'argv' is a required property"),
        ({"argv": []}, "shell: arguments.argv: must not be empty"),
        ({"argv": ["echo"] * 65}, "shell: arguments.argv: has more than 64 items"),
        ({"argv": "echo hi"}, "shell: arguments.argv: 'echo hi' is not of type 'array'"),
        (
            {"argv": ["echo"], "cwd": "/"},
            "shell: arguments: Additional properties are not allowed ('cwd' was unexpected)",
        ),
        (["echo"], "shell: arguments must be an object, not list"),
    ],
)
def test_invalid_arguments_are_refused_with_a_clear_message(arguments: Any, message: str) -> None:
    with pytest.raises(ToolError) as caught:
        shell_registry().validate("shell", arguments)
    assert str(caught.value) == message


async def test_a_long_value_is_not_quoted_back() -> None:
    async with httpx.AsyncClient() as client:
        registry = build_tools(ALL_ON, notes=NoNotes(), http_client=client)
    with pytest.raises(ToolError) as caught:
        registry.validate("remember", {"text": "x" * 2001})
    assert str(caught.value) == "remember: arguments.text: is longer than 2000 characters"


def test_valid_arguments_come_back_as_a_plain_dict() -> None:
    assert shell_registry().validate("shell", {"argv": ["echo", "hi"]}) == {"argv": ["echo", "hi"]}


def test_nothing_is_offered_until_enabled() -> None:
    registry = build_tools(ToolsSection(), notes=NoNotes())
    assert registry.specs() == ()
    assert len(registry) == 0


def test_only_enabled_tools_are_offered() -> None:
    settings = ToolsSection(current_time=ToolSwitch(enabled=True), recall=ToolSwitch(enabled=True))
    registry = build_tools(settings, notes=NoNotes())
    assert [spec.name for spec in registry.specs()] == ["current_time", "recall"]
    assert registry.specs()[0].parameters["type"] == "object"
    with pytest.raises(ToolError, match=r"tool 'shell' is not enabled: set \[tools.shell\]"):
        registry.get("shell")
    with pytest.raises(ToolError, match="not enabled"):
        registry.validate("remember", {"text": "x"})


async def test_every_built_in_has_its_level() -> None:
    async with httpx.AsyncClient() as client:
        registry = build_tools(ALL_ON, notes=NoNotes(), http_client=client)
    assert {name: registry.level_of(name) for name in registry.names} == {
        "current_time": SecurityLevel.LOW,
        "remember": SecurityLevel.LOW,
        "recall": SecurityLevel.LOW,
        "http_get": SecurityLevel.MEDIUM,
        "shell": SecurityLevel.CRITICAL,
    }
    for name in registry.names:
        assert isinstance(registry.get(name), Tool)
    shell_spec = next(spec for spec in registry.specs() if spec.name == "shell")
    assert "Allowed commands: echo" in shell_spec.description


def test_http_get_needs_the_shared_client() -> None:
    with pytest.raises(ValueError, match="http_client"):
        build_tools(ALL_ON, notes=NoNotes())


def test_an_unknown_tool_gets_a_suggestion_and_the_known_names() -> None:
    registry = build_tools(ToolsSection(current_time=ToolSwitch(enabled=True)), notes=NoNotes())
    with pytest.raises(ToolError) as caught:
        registry.get("curent_time")
    assert str(caught.value) == (
        "unknown tool 'curent_time' (did you mean 'current_time'?); known tools: current_time"
    )
    with pytest.raises(ToolError, match="unknown tool 'x'"):
        registry.level_of("x")


async def test_run_validates_then_runs(context: ToolContext) -> None:
    registry = ToolRegistry()
    registry.register(Echo())
    assert await registry.run("echo_tool", {"text": "ab", "times": 2}, context=context) == "abab"
    with pytest.raises(ToolError, match=r"arguments.times: 0 is less than the minimum of 1"):
        await registry.run("echo_tool", {"text": "ab", "times": 0}, context=context)


async def test_a_long_result_is_capped_with_a_note(context: ToolContext) -> None:
    registry = ToolRegistry()
    registry.register(Echo())
    result = await registry.run("echo_tool", {"text": "x", "times": 20_000}, context=context)
    dropped = 20_000 - RESULT_MAX_BYTES
    assert result == "x" * RESULT_MAX_BYTES + f"\n[truncated {dropped} bytes]"


def test_the_cap_never_splits_a_character() -> None:
    assert cap_text("ééé", 5) == "éé\n[truncated 2 bytes]"
    assert cap_text("ééé", 6) == "ééé"


def test_registration_refuses_duplicates_bad_names_and_broken_schemas() -> None:
    registry = ToolRegistry()
    registry.register(Echo())
    with pytest.raises(ValueError, match="already registered"):
        registry.register(Echo())

    class BadName(Echo):
        name = "has space"

    class BadSchema(Echo):
        name = "bad_schema"
        parameters: Mapping[str, Any] = {"type": "object", "properties": {"a": {"type": 3}}}

    class NotAnObject(Echo):
        name = "not_object"
        parameters: Mapping[str, Any] = {"type": "string"}

    with pytest.raises(ValueError, match="must match"):
        registry.register(BadName())
    with pytest.raises(ValueError, match="invalid parameters schema"):
        registry.register(BadSchema())
    with pytest.raises(ValueError, match="of type 'object'"):
        registry.register(NotAnObject())
    assert registry.names == ("echo_tool",)


async def test_the_injected_clock_reaches_current_time(context: ToolContext) -> None:
    moment = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    registry = build_tools(
        ToolsSection(current_time=ToolSwitch(enabled=True)), notes=NoNotes(), clock=lambda: moment
    )
    result = await registry.run("current_time", {}, context=context)
    assert result == "2026-12-02T09:00:00+00:00 (Wednesday, UTC, UTC)"
