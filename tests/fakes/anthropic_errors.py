"""How the fake Messages API says no: its error body, and the requests the real API refuses.

``api_error`` renders ``{"type": "error", "error": {"type", "message"}}``; ``check_request``
raises :class:`Invalid` for a body the real API answers with 400 (``anthropic_api`` lists
what it checks); ``check_headers`` refuses a wrong ``x-api-key`` or a missing
``anthropic-version``; ``failure`` renders a scripted :class:`Fail`.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tests.fakes.llm_script import Fail, Script

_TOOL_ID = re.compile(r"[a-zA-Z0-9_-]+")
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


class Invalid(Exception):
    """A request the real API would answer with 400 invalid_request_error."""


def api_error(status: int, message: str, *, error_type: str | None = None) -> JSONResponse:
    """The API's error body for ``status``."""
    kind = error_type or _ERROR_TYPES.get(
        status, "api_error" if status >= 500 else "invalid_request_error"
    )
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake"}
    return JSONResponse(body, status_code=status)


# --- what the real API rejects --------------------------------------------------------------


def _blocks(where: str, content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        if not content.strip():
            raise Invalid(f"{where}: all messages must have non-empty content")
        return [{"type": "text", "text": content}]
    if not isinstance(content, list) or not content:
        raise Invalid(f"{where}.content: Input should be a valid string or a non-empty list")
    if not all(isinstance(block, dict) for block in content):
        raise Invalid(f"{where}.content: every content block must be an object")
    return content


def _check_block(where: str, role: str, block: dict[str, Any]) -> None:
    kind = block.get("type")
    if kind == "text":
        if not isinstance(block.get("text"), str) or not block["text"].strip():
            raise Invalid(f"{where}: text content blocks must contain non-whitespace text")
    elif kind == "tool_use":
        if role != "assistant":
            raise Invalid(f"{where}: tool_use blocks are only allowed in assistant messages")
        if not isinstance(block.get("id"), str) or not _TOOL_ID.fullmatch(block["id"]):
            raise Invalid(f"{where}.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'")
        if not isinstance(block.get("name"), str) or not isinstance(block.get("input"), dict):
            raise Invalid(f"{where}.tool_use: name (string) and input (object) are required")
    elif kind == "tool_result":
        if role != "user":
            raise Invalid(f"{where}: tool_result blocks are only allowed in user messages")
        if not isinstance(block.get("tool_use_id"), str):
            raise Invalid(f"{where}.tool_result.tool_use_id: Field required")
    else:
        raise Invalid(
            f"{where}: Input tag {kind!r} found using 'type' does not match any of the "
            "expected tags"
        )


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise Invalid("messages: at least one message is required")
    previous_role = None
    open_tool_ids: list[str] = []  # tool_use ids of the assistant turn just before
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        role = message.get("role") if isinstance(message, dict) else None
        if role == "system":
            raise Invalid(
                f'{where}: Unexpected role "system". The Messages API accepts a top-level '
                '`system` parameter, not "system" as an input message role.'
            )
        if role not in ("user", "assistant"):
            raise Invalid(f"{where}.role: Input should be 'user' or 'assistant'")
        if role == previous_role:
            raise Invalid(
                'messages: roles must alternate between "user" and "assistant", '
                f'but found multiple "{role}" roles in a row'
            )
        blocks = _blocks(where, message.get("content"))
        for j, block in enumerate(blocks):
            _check_block(f"{where}.content.{j}", role, block)
        answered = [b["tool_use_id"] for b in blocks if b["type"] == "tool_result"]
        unknown = [tool_id for tool_id in answered if tool_id not in open_tool_ids]
        if unknown:
            raise Invalid(
                f"{where}.content: unexpected `tool_use_id` found in `tool_result` blocks: "
                f"{', '.join(unknown)}. Each `tool_result` block must have a corresponding "
                "`tool_use` block in the previous message."
            )
        missing = [tool_id for tool_id in open_tool_ids if tool_id not in answered]
        if missing:
            raise Invalid(
                f"{where}: `tool_use` ids were found without `tool_result` blocks immediately "
                f"after: {', '.join(missing)}. Each `tool_use` block must have a corresponding "
                "`tool_result` block in the next message."
            )
        open_tool_ids = [b["id"] for b in blocks if b["type"] == "tool_use"]
        previous_role = role


def check_request(body: Any) -> None:
    """Raise :class:`Invalid` where the real API would refuse ``body`` with a 400."""
    if not isinstance(body, dict):
        raise Invalid("body: Input should be a valid dictionary")
    for required in ("model", "max_tokens", "messages"):
        if required not in body:
            raise Invalid(f"{required}: Field required")
    max_tokens = body["max_tokens"]
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise Invalid("max_tokens: Input should be greater than or equal to 1")
    if not isinstance(body.get("system", ""), str | list):
        raise Invalid("system: Input should be a valid string or a list of text blocks")
    _check_messages(body["messages"])
    for i, tool in enumerate(body.get("tools") or []):
        if (
            not isinstance(tool, dict)
            or "name" not in tool
            or not isinstance(tool.get("input_schema"), dict)
        ):
            raise Invalid(f"tools.{i}: name and input_schema are required")


# --- headers and scripted failures ---------------------------------------------------------


def check_headers(request: Request, script: Script) -> Response | None:
    """The 401 / 400 for a wrong ``x-api-key`` or no ``anthropic-version``; None when fine."""
    key = request.headers.get("x-api-key")
    if not key:
        return api_error(401, "x-api-key header is required")
    if key != script.api_key:
        return api_error(401, "invalid x-api-key")
    if request.headers.get("anthropic-version") is None:
        return api_error(400, "anthropic-version: header is required")
    return None


def failure(step: Fail) -> Response:
    """A scripted failure in the API's shape, ``Retry-After`` included when it has one."""
    headers = {}
    if step.retry_after is not None:
        value = step.retry_after
        headers["retry-after"] = str(int(value)) if value == int(value) else str(value)
    if step.raw_body is not None:
        return Response(
            step.raw_body, status_code=step.status, headers=headers, media_type="text/html"
        )
    if step.kind == "overloaded":
        response = api_error(529, step.message or "Overloaded", error_type="overloaded_error")
    elif step.kind == "context":
        message = f"prompt is too long: 210000 tokens > 200000 maximum ({step.message})"
        response = api_error(step.status, message, error_type="invalid_request_error")
    else:
        response = api_error(step.status, step.message)
    response.headers.update(headers)
    return response
