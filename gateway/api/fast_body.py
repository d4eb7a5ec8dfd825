"""Request bodies parsed in one step on the hot routes, documented like FastAPI's own.

FastAPI decodes a body param with ``json.loads`` and then validates the Python objects,
with its dependency machinery around both; ``model_validate_json`` does the same checks
in one pass in pydantic-core, which is most of what the chat routes spend per request
outside the provider call. Errors keep FastAPI's shape (``RequestValidationError``).
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

Body = TypeVar("Body", bound=BaseModel)
COMPONENTS_KEY = "x-switchboard-components"


async def parse_body(request: Request, model: type[Body]) -> Body:
    """The validated body; bad JSON and bad fields raise ``RequestValidationError``."""
    raw = await request.body()
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None


def request_body_schema(model: type[BaseModel], *, namespace: str = "") -> dict[str, Any]:
    """``openapi_extra`` declaring ``model`` as the JSON body of a route.

    The model's schema and its sub-models travel under ``COMPONENTS_KEY``;
    ``install_body_components`` moves them into ``components.schemas``. ``namespace``
    prefixes their component names, for bodies whose sub-models share class names with
    another route's (``MessageIn`` of the OpenAI wire format and of ``/api/chat/multi``).
    """
    schema = model.model_json_schema(ref_template=f"#/components/schemas/{namespace}{{model}}")
    definitions = {f"{namespace}{name}": d for name, d in schema.pop("$defs", {}).items()}
    name = f"{namespace}{model.__name__}"
    definitions[name] = schema
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
        },
        COMPONENTS_KEY: definitions,
    }


def install_body_components(openapi: dict[str, Any]) -> dict[str, Any]:
    """Move every route's ``COMPONENTS_KEY`` schemas into ``components.schemas``.

    Two different schemas under one name would document one route with the other's body:
    that is a bug of ours, refused here (at the first ``/openapi.json``, i.e. in the tests).
    """
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    for path in openapi.get("paths", {}).values():
        for operation in path.values():
            if not isinstance(operation, dict):
                continue
            for name, definition in operation.pop(COMPONENTS_KEY, {}).items():
                if name in schemas and schemas[name] != definition:
                    raise ValueError(f"two request body schemas are named {name!r}")
                schemas[name] = definition
    return openapi
