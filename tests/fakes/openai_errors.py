"""How the fake Chat Completions APIs say no, in each flavour's own shape.

``error`` renders an error body (OpenAI's nested one, or the flat one of vLLM and Mistral);
``unauthorized`` the answer to a wrong key; ``failure`` a scripted :class:`Fail`;
``stream_error`` the error chunk of a scripted :class:`StreamError`. ``check_request`` raises
:class:`Rejected` for a body the real API refuses (``openai_api`` lists what each flavour
checks).
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Literal, NoReturn

from starlette.responses import JSONResponse, Response

from tests.fakes.llm_script import Fail, StreamError

Flavour = Literal["openai", "openai_compatible", "mistral"]

_MISTRAL_ID = re.compile(r"[a-zA-Z0-9]{9}")
_MISTRAL_FIELDS = {
    "model",
    "messages",
    "temperature",
    "top_p",
    "max_tokens",
    "stream",
    "stop",
    "random_seed",
    "response_format",
    "tools",
    "tool_choice",
    "presence_penalty",
    "frequency_penalty",
    "n",
    "prediction",
    "parallel_tool_calls",
    "safe_prompt",
    "prompt_mode",
}
_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    429: "requests",
    500: "server_error",
    503: "server_error",
}
_VLLM_TYPES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    404: "NotFoundError",
    429: "RateLimitError",
    500: "InternalServerError",
    503: "ServiceUnavailableError",
}


class Rejected(Exception):
    """A request the fake refuses; ``response`` is the error to answer with."""

    def __init__(self, response: Response) -> None:
        self.response = response


# --- errors in each flavour's shape --------------------------------------------------------


def error(
    flavour: Flavour,
    status: int,
    message: Any,
    *,
    type_: str | None = None,
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An error body in ``flavour``'s shape."""
    if flavour == "openai":
        info = {
            "message": message,
            "type": type_ or _TYPES.get(status, "invalid_request_error"),
            "param": param,
            "code": code,
        }
        return JSONResponse({"error": info}, status, headers=headers)
    flat = {"object": "error", "message": message, "param": param}
    if flavour == "openai_compatible":
        flat |= {"type": type_ or _VLLM_TYPES.get(status, "BadRequestError"), "code": status}
    else:
        kind = type_ or ("invalid_request_error" if status < 500 else "internal_server_error")
        flat |= {"type": kind, "code": code}
    return JSONResponse(flat, status, headers=headers)


def unauthorized(flavour: Flavour, given: str | None, path: str) -> JSONResponse:
    """The 401 for a missing or wrong key (``given``, without ``Bearer``)."""
    if flavour == "openai_compatible":
        return JSONResponse({"error": "Unauthorized"}, 401)
    if flavour == "mistral":
        if path.endswith("/models"):
            return JSONResponse({"detail": "Unauthorized"}, 401)
        return JSONResponse({"message": "Unauthorized", "request_id": uuid.uuid4().hex}, 401)
    if given is None:
        return error(
            flavour,
            401,
            "You didn't provide an API key. You need to provide your API "
            "key in an Authorization header using Bearer auth.",
        )
    # The real API masks most of the key; echoing it whole makes redaction testable.
    return error(
        flavour,
        401,
        f"Incorrect API key provided: {given}. You can find your API key "
        "at https://platform.openai.com/account/api-keys.",
        code="invalid_api_key",
    )


def failure(flavour: Flavour, step: Fail) -> Response:
    """A scripted failure as ``flavour`` words it, ``Retry-After`` included when it has one."""
    headers = {}
    if step.retry_after is not None:
        headers["Retry-After"] = f"{step.retry_after:g}"
    if step.raw_body is not None:
        return Response(step.raw_body, step.status, headers=headers, media_type="text/plain")
    mistral, openai = flavour == "mistral", flavour == "openai"
    if step.kind == "context":
        if openai:
            return error(
                flavour, step.status, step.message, code="context_length_exceeded", param="messages"
            )
        if mistral:
            return error(
                flavour,
                step.status,
                "Prompt contains 40001 tokens and 0 draft tokens, "
                "too large for model with 32768 maximum context length",
            )
        return error(
            flavour,
            step.status,
            "This model's maximum context length is 4096 tokens. "
            "However, you requested 5000 tokens.",
        )
    if step.kind == "overloaded":
        if openai:
            return error(
                flavour,
                step.status,
                step.message,
                type_="service_unavailable_error",
                code="server_is_overloaded",
                headers=headers,
            )
        if mistral:
            return error(
                flavour,
                step.status,
                "Service tier capacity exceeded for this model.",
                headers=headers,
            )
        return error(flavour, step.status, f"Server is overloaded: {step.message}", headers=headers)
    if step.status == 429:
        if openai:  # OpenAI always says which limit ran out and when it resets
            headers |= {
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": f"{step.retry_after or 0.02:g}s",
            }
            return error(flavour, 429, step.message, code="rate_limit_exceeded", headers=headers)
        if mistral:
            return error(
                flavour, 429, step.message, type_="rate_limited", code="1300", headers=headers
            )
    if step.status == 422 and mistral:
        detail = [{"type": "value_error", "loc": ["body"], "msg": step.message}]
        return JSONResponse({"detail": detail}, 422, headers=headers)
    return error(flavour, step.status, step.message, headers=headers)


def stream_error(flavour: Flavour, step: StreamError) -> dict[str, Any]:
    """The error object a ``flavour`` stream sends as a ``data:`` chunk."""
    overloaded = step.kind == "overloaded"
    if flavour == "openai":
        kind = "service_unavailable_error" if overloaded else "server_error"
        code = "server_is_overloaded" if overloaded else None
        return {"error": {"message": step.message, "type": kind, "param": None, "code": code}}
    if flavour == "mistral":
        text = "Service tier capacity exceeded for this model." if overloaded else step.message
        return {
            "object": "error",
            "message": text,
            "type": "internal_server_error",
            "param": None,
            "code": None,
        }
    text = f"Server is overloaded: {step.message}" if overloaded else step.message
    return {
        "object": "error",
        "message": text,
        "type": "InternalServerError",
        "param": None,
        "code": 503 if overloaded else 500,
    }


# --- what the real APIs refuse -------------------------------------------------------------


def reject(flavour: Flavour, status: int, message: Any, **fields: Any) -> NoReturn:
    """Refuse the request with this error."""
    raise Rejected(error(flavour, status, message, **fields))


def check_request(flavour: Flavour, body: Any) -> None:
    """Raise :class:`Rejected` where the real ``flavour`` API would refuse ``body``."""
    if not isinstance(body, dict):
        reject(flavour, 400, "We could not parse the JSON body of your request.")
    if flavour == "mistral":
        problems = [
            (k, "Extra inputs are not permitted") for k in sorted(body) if k not in _MISTRAL_FIELDS
        ]
        problems += [(k, "Field required") for k in ("model", "messages") if k not in body]
        if problems:
            reject(flavour, 422, {"detail": [{"loc": ["body", k], "msg": m} for k, m in problems]})
    if not body.get("model"):
        reject(flavour, 400, "you must provide a model parameter")
    if not body.get("messages"):
        reject(flavour, 400, "[] is too short - 'messages'", param="messages")
    if flavour == "openai" and "max_tokens" in body:
        reject(
            flavour,
            400,
            "Unsupported parameter: 'max_tokens' is not supported with this "
            "model. Use 'max_completion_tokens' instead.",
            code="unsupported_parameter",
        )
    if "stream_options" in body and not body.get("stream"):
        reject(
            flavour,
            400,
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
        )
    _check_tool_calls(flavour, body["messages"])


def _check_tool_calls(flavour: Flavour, messages: list[dict[str, Any]]) -> None:
    called: set[str] = set()
    for i, message in enumerate(messages):
        calls = message.get("tool_calls") or []
        ids = [c.get("id", "") for c in calls]
        if message.get("role") == "tool":
            ids.append(message.get("tool_call_id", ""))
        for call_id in ids:
            if flavour == "mistral" and not _MISTRAL_ID.fullmatch(call_id):
                reject(
                    flavour,
                    400,
                    f"Tool call id was {call_id} but must be a-z, A-Z, 0-9, with a length of 9.",
                    type_="invalid_function_call",
                    code="3280",
                )
            if flavour == "openai" and len(call_id) > 40:
                reject(
                    flavour,
                    400,
                    f"Invalid 'messages[{i}].tool_calls.id': string too long. "
                    "Expected a string with maximum length 40.",
                )
        for call in calls:
            called.add(call.get("id", ""))
            arguments = call.get("function", {}).get("arguments")
            if flavour != "mistral" and not isinstance(arguments, str):
                reject(
                    flavour,
                    400,
                    f"Invalid type for 'messages[{i}].tool_calls.function"
                    ".arguments': expected a string, but got an object instead.",
                )
        if message.get("role") == "tool" and message.get("tool_call_id") not in called:
            reject(
                flavour,
                400,
                "Invalid parameter: messages with role 'tool' must be a response "
                "to a preceding message with 'tool_calls'.",
            )
