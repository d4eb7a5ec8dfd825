"""Completes the generated OpenAPI document with what every route shares.

Routes declare their own answers and the errors that are theirs (404, 409, 413 ...);
what is the same everywhere is added here, in one place, so it cannot be forgotten:

- the error shape ``{"error": {"code", "message"}}`` as one component, ``ErrorResponse``,
  referenced by every 4xx/5xx answer that names no other body;
- FastAPI's default 422 body (``HTTPValidationError``) replaced by that shape, because
  ``gateway.api.errors`` answers validation errors in it;
- 400 ``invalid_json`` and 422 ``invalid_request`` on every route that takes a JSON body;
- the admin token as a bearer security scheme, and a 401 answer, on every path the
  admin-token middleware guards (``gateway.api.auth.is_protected`` decides, as it does
  for requests).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

ERROR_SCHEMA = "ErrorResponse"
SECURITY_SCHEME = "adminToken"
_ERROR_REF = {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_DESCRIPTIONS = {
    "400": "the body is not valid JSON (`invalid_json`)",
    "401": "missing or wrong admin token (`unauthorized`)",
    "422": "a parameter or body field is invalid; the message names it",
}


class ErrorDetail(BaseModel):
    """What went wrong: a stable machine code and a message for people."""

    code: str = Field(examples=["not_found"])
    message: str = Field(examples=["no approval with id 'Xy12'"])


class ErrorResponse(BaseModel):
    """The body of every error answer of the admin API."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"error": {"code": "unauthorized", "message": "missing or wrong admin token"}}
            ]
        }
    )

    error: ErrorDetail


def error_responses(statuses: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status with its description and the error shape."""
    return {
        status: {"description": text, "model": ErrorResponse} for status, text in statuses.items()
    }


def sse_events(events: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The ``text/event-stream`` media type: one schema per event name for its JSON ``data``.

    OpenAPI 3.1 has no keyword of its own for event streams; ``schema`` describes one
    event (``event``, ``data``), and ``data`` is JSON text whose shape ``contentSchema`` gives.
    """
    variants = [
        {
            "type": "object",
            "required": ["event", "data"],
            "properties": {
                "event": {"const": name},
                "data": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": data,
                },
            },
        }
        for name, data in events.items()
    ]
    return {"text/event-stream": {"schema": {"oneOf": variants}}}


TEXT_DELTA_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["text"],
    "properties": {"text": {"type": "string"}},
}
ERROR_EVENT: dict[str, Any] = {"$ref": "#/components/schemas/ErrorDetail"}


def complete_openapi(
    spec: dict[str, Any], *, is_protected: Callable[[str], bool]
) -> dict[str, Any]:
    """Add the shared error answers, the security scheme and the 401s to ``spec``."""
    components = spec.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    error_schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error_schema.pop("$defs", {}))
    schemas[ERROR_SCHEMA] = error_schema
    components.setdefault("securitySchemes", {})[SECURITY_SCHEME] = {
        "type": "http",
        "scheme": "bearer",
        "description": "`Authorization: Bearer <admin_token>` ([gateway] admin_token)",
    }
    for path, item in spec.get("paths", {}).items():
        for method in _METHODS:
            operation = item.get(method)
            if isinstance(operation, dict):
                _complete_operation(operation, protected=is_protected(path))
    for name in _FASTAPI_VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    return spec


def _complete_operation(operation: dict[str, Any], *, protected: bool) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    if "application/json" in operation.get("requestBody", {}).get("content", {}):
        responses.setdefault("400", {"description": _DESCRIPTIONS["400"]})
        responses.setdefault("422", {"description": _DESCRIPTIONS["422"]})
    if protected:
        operation.setdefault("security", [{SECURITY_SCHEME: []}])
        responses.setdefault("401", {"description": _DESCRIPTIONS["401"]})
    for status, response in responses.items():
        if status[:1] not in ("4", "5"):
            continue
        content = response.get("content")
        schema = (content or {}).get("application/json", {}).get("schema", {})
        if not content or schema.get("$ref", "").endswith("/HTTPValidationError"):
            response["content"] = {"application/json": {"schema": dict(_ERROR_REF)}}
            if status in _DESCRIPTIONS and response.get("description") == "Validation Error":
                response["description"] = _DESCRIPTIONS[status]
