"""What ``/v1`` answers, byte for byte in OpenAI's shapes: completions, chunks, errors.

* ``chat.completion``: ``id`` (``chatcmpl-...``), ``object``, ``created``, ``model``
  (``provider/model`` of who answered), one choice with ``message`` {role, content,
  refusal, tool_calls?} and ``finish_reason``, and ``usage``.
* ``chat.completion.chunk`` server-sent events (:class:`ChunkWriter`): the role, content
  deltas, tool call deltas, the finish chunk, the usage chunk when asked, ``[DONE]``. The
  envelope of a stream's chunks is encoded once; each delta only JSON-escapes its text.
* Errors: ``{"error": {"message", "type", "param", "code"}}`` (the SDKs read all four),
  our own machine code in ``code``, the status from the error class (:func:`error_status`).
"""

from __future__ import annotations

import itertools
import logging
import secrets
from collections.abc import Callable, Iterable
from typing import Any

from pydantic_core import to_json

from core.errors import (
    ContextTooLong,
    NotFound,
    ProviderAuthError,
    ProviderRateLimited,
    RateLimited,
    SwitchboardError,
)
from core.types import ChatResult, FinishReason, ToolCall, Usage
from gateway.api.openai_wire import InvalidRequest

log = logging.getLogger("switchboard.api")

JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
DONE = b"data: [DONE]\n\n"


def completion_ids() -> Callable[[], str]:
    """``chatcmpl-<random prefix><counter>``: unique without a random draw per request."""
    prefix = f"chatcmpl-{secrets.token_hex(6)}"
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter):08x}"


class AbnormalFinish(SwitchboardError):
    """The provider ended its answer with ``finish_reason: error`` (OpenAI has no such value)."""

    code = "provider_finish_error"
    http_status = 502

    def __init__(self, provider: str) -> None:
        super().__init__(
            f"provider {provider!r} ended its answer abnormally (finish reason 'error'); "
            "try again or choose another model"
        )


def finish_reason(reason: FinishReason, provider: str) -> str:
    """Our finish reason as OpenAI's; ``error`` is a failure, never a 200."""
    if reason == "error":
        raise AbnormalFinish(provider)
    return reason


def usage_json(usage: Usage) -> dict[str, int]:
    """Token counts in OpenAI's names."""
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def _tool_calls_json(calls: Iterable[ToolCall]) -> list[dict[str, Any]]:
    return [
        {
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": to_json(call.arguments).decode()},
        }
        for call in calls
    ]


def completion_body(result: ChatResult, *, completion_id: str, created: int) -> bytes:
    """The ``chat.completion`` object of a complete answer."""
    reason = finish_reason(result.finish_reason, result.provider)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": result.content if result.content or not result.tool_calls else None,
        "refusal": None,
    }
    if result.tool_calls:
        message["tool_calls"] = _tool_calls_json(result.tool_calls)
    return to_json(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": f"{result.provider}/{result.model}",
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": reason}
            ],
            "usage": usage_json(result.usage),
        }
    )


class ChunkWriter:
    """The ``chat.completion.chunk`` events of one stream, as ``data: ...`` frames."""

    def __init__(self, *, completion_id: str, created: int, model: str, usage: bool) -> None:
        self._head = b"".join(
            (
                b'data: {"id":',
                to_json(completion_id),
                b',"object":"chat.completion.chunk","created":',
                str(created).encode(),
                b',"model":',
                to_json(model),
                b',"choices":',
            )
        )
        self._choice_tail = b',"logprobs":null,"finish_reason":null}]'
        self._tail = (b',"usage":null' if usage else b"") + b"}\n\n"
        self._next_call = 0
        self.with_usage = usage

    def _frame(self, delta: bytes) -> bytes:
        return b"".join((self._head, b'[{"index":0,"delta":', delta, self._choice_tail, self._tail))

    def role(self) -> bytes:
        """The first chunk: the assistant's role and empty content."""
        return self._frame(b'{"role":"assistant","content":""}')

    def text(self, text: str) -> bytes:
        """A piece of content."""
        return self._frame(b'{"content":' + to_json(text) + b"}")

    def tool_call(self, call: ToolCall) -> bytes:
        """A whole tool call in one delta: index, id, type, name and the arguments string."""
        index, self._next_call = self._next_call, self._next_call + 1
        part = {
            "index": index,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": to_json(call.arguments).decode()},
        }
        return self._frame(b'{"tool_calls":[' + to_json(part) + b"]}")

    def finish(self, reason: str) -> bytes:
        """The last chunk with a choice: an empty delta and the finish reason."""
        return b"".join(
            (
                self._head,
                b'[{"index":0,"delta":{},"logprobs":null,"finish_reason":',
                to_json(reason),
                b"}]",
                self._tail,
            )
        )

    def usage(self, usage: Usage) -> bytes:
        """The ``include_usage`` chunk: empty ``choices`` and the stream's token counts."""
        return self._head + b'[],"usage":' + to_json(usage_json(usage)) + b"}\n\n"


# --- errors -------------------------------------------------------------------------------


def error_type(status: int) -> str:
    """OpenAI's ``error.type`` for a status."""
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    return "server_error" if status >= 500 else "invalid_request_error"


def error_body(message: str, *, status: int, code: str, param: str | None = None) -> bytes:
    """``{"error": {"message", "type", "param", "code"}}``."""
    error = {"message": message, "type": error_type(status), "param": param, "code": code}
    return to_json({"error": error})


def error_param(exc: SwitchboardError) -> str | None:
    """The request field an error is about, when there is one."""
    if isinstance(exc, InvalidRequest):
        return exc.param
    if isinstance(exc, NotFound):
        return "model"
    if isinstance(exc, ContextTooLong):
        return "messages"
    return None


def error_headers(exc: SwitchboardError) -> list[tuple[bytes, bytes]]:
    """JSON, ``Retry-After`` when known, and no SDK retries where retrying cannot help."""
    headers = list(JSON_HEADERS)
    retry_after = exc.retry_after if isinstance(exc, RateLimited | ProviderRateLimited) else None
    if retry_after is not None:
        headers.append((b"retry-after", str(max(1, round(retry_after))).encode()))
    if isinstance(exc, ProviderAuthError):  # the gateway's key for the provider is wrong
        headers.append((b"x-should-retry", b"false"))
    return headers


def switchboard_error(exc: SwitchboardError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and body of one of our errors on ``/v1``."""
    status = exc.http_status
    if status >= 500:
        log.error("event=request_failed api=openai code=%s problem=%r", exc.code, exc.message)
    body = error_body(exc.message, status=status, code=exc.code, param=error_param(exc))
    return status, error_headers(exc), body


def stream_error_frame(*, code: str, message: str) -> bytes:
    """The ``data: {"error": ...}`` event that ends a stream broken after its first token."""
    return b"data: " + error_body(message, status=502, code=code) + b"\n\n"
