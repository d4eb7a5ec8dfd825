"""The tool registry: what the model is offered, argument validation, and capped results.

Every tool's ``parameters`` is a JSON schema (Draft 2020-12), checked when the tool is
registered, so a broken schema fails at start-up rather than on the first call. Arguments
the model sends are validated against it before the tool runs; the error names the
failing path (``shell: arguments.argv[0]: 3 is not of type 'string'``) so the model can
correct itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError, best_match

from core.errors import ToolError
from core.ports import Tool
from core.suggest import did_you_mean
from core.types import SecurityLevel, ToolContext, ToolSpec

# What goes back to the model from one call; a tool's own caps are usually lower, this one
# keeps a misbehaving tool from flooding the context window.
RESULT_MAX_BYTES = 16 * 1024
# The names every provider accepts for a function (OpenAI's rule is the strictest).
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A validation message quotes the offending value; a 2,000-character string is no help.
_MESSAGE_MAX_CHARS = 200
# Built-ins that exist but may be switched off: calling one gets a hint instead of a guess.
BUILTIN_TOOLS = ("current_time", "remember", "recall", "http_get", "shell")


@dataclass(frozen=True, slots=True)
class _Entry:
    tool: Tool
    spec: ToolSpec
    validator: Draft202012Validator


class ToolRegistry:
    """The tools the model may call, by name."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        # Built once per registration, not per request: the orchestrator asks on every turn.
        self._specs: tuple[ToolSpec, ...] = ()

    def register(self, tool: Tool) -> None:
        """Add a tool; raises ``ValueError`` for a bad name, a duplicate or a broken schema."""
        if not _TOOL_NAME.match(tool.name):
            raise ValueError(f"tool name {tool.name!r} must match {_TOOL_NAME.pattern}")
        if tool.name in self._entries:
            raise ValueError(f"a tool named {tool.name!r} is already registered")
        schema = dict(tool.parameters)
        if schema.get("type") != "object":
            raise ValueError(f"{tool.name}: the parameters schema must be of type 'object'")
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            raise ValueError(f"{tool.name}: invalid parameters schema: {exc.message}") from exc
        spec = ToolSpec(name=tool.name, description=tool.description, parameters=schema)
        self._entries[tool.name] = _Entry(tool, spec, Draft202012Validator(schema))
        self._specs = (*self._specs, spec)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def names(self) -> tuple[str, ...]:
        """Registered tool names, in registration order."""
        return tuple(self._entries)

    def specs(self) -> tuple[ToolSpec, ...]:
        """What the model is offered: name, description and schema of every registered tool."""
        return self._specs

    def get(self, name: str) -> Tool:
        """The tool called ``name``; unknown names raise ``ToolError`` listing the known ones."""
        entry = self._entries.get(name)
        if entry is None:
            raise self._unknown(name)
        return entry.tool

    def level_of(self, name: str) -> SecurityLevel:
        """The security level of a tool (decides whether a call waits for an approval)."""
        return self.get(name).level

    def validate(self, name: str, arguments: Any) -> dict[str, Any]:
        """Check ``arguments`` against the tool's schema; returns them as a plain dict.

        Raises ``ToolError`` with the failing path, for example
        ``shell: arguments.argv[0]: 3 is not of type 'string'``.
        """
        entry = self._entries.get(name)
        if entry is None:
            raise self._unknown(name)
        if not isinstance(arguments, Mapping):
            raise ToolError(
                f"{name}: arguments must be an object, not {type(arguments).__name__}", tool=name
            )
        instance = dict(arguments)
        error = best_match(entry.validator.iter_errors(instance))
        if error is not None:
            raise ToolError(f"{name}: {_path(error)}: {_message(error)}", tool=name)
        return instance

    async def run(self, name: str, arguments: Any, *, context: ToolContext) -> str:
        """Validate, run, and cap the result at ``RESULT_MAX_BYTES`` (with a truncation note).

        Raises ``ToolError`` for unknown tools, invalid arguments and refusals or failures
        reported by the tool itself.
        """
        validated = self.validate(name, arguments)
        result = await self._entries[name].tool.run(validated, context=context)
        return cap_text(result, RESULT_MAX_BYTES)

    def _unknown(self, name: str) -> ToolError:
        if name in BUILTIN_TOOLS:
            return ToolError(
                f"tool {name!r} is not enabled: set [tools.{name}] enabled = true", tool=name
            )
        known = ", ".join(self._entries) or "none"
        return ToolError(
            f"unknown tool {name!r}{did_you_mean(name, self._entries)}; known tools: {known}",
            tool=name,
        )


def cap_text(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8 plus a ``[truncated N bytes]`` note."""
    encoded = text.encode("utf-8", errors="replace")
    if len(encoded) <= max_bytes:
        return text
    # errors="ignore" drops a character cut in half at the boundary instead of mangling it.
    kept = encoded[:max_bytes].decode("utf-8", errors="ignore")
    dropped = len(encoded) - len(kept.encode("utf-8"))
    return f"{kept}\n[truncated {dropped} bytes]"


def _path(error: ValidationError) -> str:
    parts = ["arguments"]
    for element in error.absolute_path:
        if isinstance(element, int):
            parts.append(f"[{element}]")
        elif _IDENTIFIER.match(element):
            parts.append(f".{element}")
        else:
            parts.append(f"[{element!r}]")
    return "".join(parts)


def _message(error: ValidationError) -> str:
    # Length errors quote the whole value; say the limit instead.
    limit = error.validator_value
    if error.validator == "maxLength":
        return f"is longer than {limit} characters"
    if error.validator == "minLength":
        return "must not be empty" if limit == 1 else f"is shorter than {limit} characters"
    if error.validator == "maxItems":
        return f"has more than {limit} items"
    if error.validator == "minItems":
        return "must not be empty" if limit == 1 else f"has fewer than {limit} items"
    message = error.message
    if len(message) > _MESSAGE_MAX_CHARS:
        message = message[: _MESSAGE_MAX_CHARS - 3] + "..."
    return message
