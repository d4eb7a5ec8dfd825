"""Every error answers ``{"error": {"code", "message"}}`` with a fitting status.

Bad input is always a 4xx; a 500 only ever means a bug, and it says nothing internal.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import RateLimited, SwitchboardError

log = logging.getLogger("switchboard.api")

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    503: "unavailable",
}


def error_response(
    status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The one error shape of the API."""
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p != "body"]
    return ".".join(parts) or "body"


async def _on_http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = _STATUS_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return error_response(exc.status_code, code, message, headers=exc.headers)


async def _on_validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    return validation_error_response(list(exc.errors()))


def validation_error_response(errors: list[Any]) -> JSONResponse:
    """400 for a body that is not JSON, else 422 naming the first bad field."""
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "invalid_json", "the request body is not valid JSON")
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    message = f"{_location(tuple(first.get('loc', ())))}: {first.get('msg', 'invalid')}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problems)"
    return error_response(422, "invalid_request", message)


async def _on_switchboard_error(_: Request, exc: SwitchboardError) -> JSONResponse:
    return switchboard_error_response(exc)


def switchboard_error_response(exc: SwitchboardError) -> JSONResponse:
    """An error of ours in the error shape, with its status (and Retry-After when known)."""
    headers = None
    if isinstance(exc, RateLimited) and exc.retry_after is not None:
        headers = {"Retry-After": str(max(1, round(exc.retry_after)))}
    if exc.http_status >= 500:
        log.error("event=request_failed code=%s problem=%r", exc.code, exc.message)
    return error_response(exc.http_status, exc.code, exc.message, headers=headers)


async def _on_unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("event=unhandled_error", exc_info=exc)
    return error_response(500, "internal_error", "internal error: the gateway log has details")


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception to the error shape."""
    # Starlette types handlers as taking Exception; each of ours takes its own class.
    app.add_exception_handler(StarletteHTTPException, _on_http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _on_validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(SwitchboardError, _on_switchboard_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _on_unexpected)
