"""/openapi.json as an API client generator or a reader of /docs relies on it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

# Answered without the admin token: the probes, and the platforms' callbacks (which carry
# the platform's own signature or secret instead).
OPEN_PATHS = {"/healthz", "/readyz", "/telegram/webhook", "/slack/events", "/discord/interactions"}
PAGED_LISTS = {
    "/api/approvals",
    "/api/actions",
    "/api/audit",
    "/api/conversations",
    "/api/conversations/{key}/messages",
}
ERROR_REF = "#/components/schemas/ErrorResponse"
METHODS = ("get", "put", "post", "delete", "patch")


@pytest.fixture
async def spec(api: httpx.AsyncClient) -> dict[str, Any]:
    answer = await api.get("/openapi.json")
    assert answer.status_code == 200
    document: dict[str, Any] = answer.json()
    return document


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The schema behind a ``$ref`` (or an array's items, or a map's values)."""
    for _ in range(3):
        if "$ref" in schema:
            schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        elif schema.get("type") == "array" and "examples" not in schema:
            schema = schema["items"]
        elif isinstance(schema.get("additionalProperties"), dict) and "examples" not in schema:
            schema = schema["additionalProperties"]
    return schema


def has_example(spec: dict[str, Any], media: dict[str, Any]) -> bool:
    if "example" in media or "examples" in media:
        return True
    return "examples" in resolve(spec, media.get("schema", {}))


def test_every_operation_has_a_summary_a_2xx_schema_and_a_401(spec: dict[str, Any]) -> None:
    problems = []
    for path, method, op in operations(spec):
        name = f"{method.upper()} {path}"
        if not op.get("summary"):
            problems.append(f"{name}: no summary")
        if not op.get("description"):
            problems.append(f"{name}: no description")
        success = [r for status, r in op["responses"].items() if status.startswith("2")]
        if not any(m.get("schema") for r in success for m in r.get("content", {}).values()):
            problems.append(f"{name}: no schema for its 2xx answer")
        if path not in OPEN_PATHS:
            unauthorized = op["responses"].get("401", {})
            if not unauthorized.get("content", {}).get("application/json", {}).get("schema"):
                problems.append(f"{name}: no 401 answer with its body")
            if op.get("security") != [{"adminToken": []}]:
                problems.append(f"{name}: the admin token is not its security scheme")
    assert problems == []


def test_the_error_shape_is_one_component(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    assert schemas["ErrorResponse"]["required"] == ["error"]
    detail = resolve(spec, schemas["ErrorResponse"]["properties"]["error"])
    assert set(detail["required"]) == {"code", "message"}
    # FastAPI's own validation body is not what the API answers, so it is not documented.
    assert "HTTPValidationError" not in schemas
    assert spec["components"]["securitySchemes"]["adminToken"]["scheme"] == "bearer"
    for path, method, op in operations(spec):
        # /v1 answers errors in OpenAI's shape (which has the same code and message).
        for status in ("400", "401", "404", "409", "413", "422", "429"):
            if status in op["responses"] and not path.startswith("/v1/"):
                content = op["responses"][status]["content"]["application/json"]
                assert content["schema"] == {"$ref": ERROR_REF}, (method, path, status)


def test_routes_with_a_json_body_document_its_errors(spec: dict[str, Any]) -> None:
    for path, method, op in operations(spec):
        if "application/json" in op.get("requestBody", {}).get("content", {}):
            assert {"400", "422"} <= set(op["responses"]), (method, path)


def test_streams_document_each_event(spec: dict[str, Any]) -> None:
    for path, names in (
        ("/api/chat", {"delta", "done", "error"}),
        ("/api/chat/multi", {"delta", "tool_call", "done", "error"}),
    ):
        media = spec["paths"][path]["post"]["responses"]["200"]["content"]["text/event-stream"]
        variants = media["schema"]["oneOf"]
        assert {v["properties"]["event"]["const"] for v in variants} == names, path
        for variant in variants:
            data = variant["properties"]["data"]
            assert data["contentMediaType"] == "application/json"
            ref = data["contentSchema"].get("$ref")
            assert ref is None or ref.rsplit("/", 1)[1] in spec["components"]["schemas"]


def test_json_routes_have_example_bodies(spec: dict[str, Any]) -> None:
    missing = []
    for path, method, op in operations(spec):
        body = op.get("requestBody", {}).get("content", {}).get("application/json")
        if body is not None and not has_example(spec, body):
            missing.append(f"{method.upper()} {path}: request")
        for status, response in op["responses"].items():
            media = response.get("content", {}).get("application/json")
            if status.startswith("2") and media is not None and not has_example(spec, media):
                missing.append(f"{method.upper()} {path}: {status} answer")
    assert missing == []


def test_every_list_documents_its_paging(spec: dict[str, Any]) -> None:
    for path in PAGED_LISTS:
        op = spec["paths"][path]["get"]
        params = {p["name"]: p for p in op["parameters"]}
        limit = params["limit"]["schema"]
        assert (limit["minimum"], limit["maximum"], limit["default"]) == (1, 1000, 100), path
        assert "cursor" in params, path
        assert set(op["responses"]["200"]["headers"]) == {"X-Next-Cursor", "Link"}, path
        assert "Paging:" in op["description"], path
    audit = {p["name"] for p in spec["paths"]["/api/audit"]["get"]["parameters"]}
    assert {"after_seq", "cursor", "kind"} <= audit
    actions = {p["name"] for p in spec["paths"]["/api/actions"]["get"]["parameters"]}
    assert {"status", "level", "conversation"} <= actions


async def test_the_docs_pages_load_their_assets_from_the_gateway(api: httpx.AsyncClient) -> None:
    for page in ("/docs", "/redoc"):
        html = (await api.get(page)).text
        assert "cdn." not in html and "fonts.googleapis" not in html, page
        assert "/docs-assets/" in html, page
    asset = await api.get("/docs-assets/swagger-ui-bundle.js")
    assert asset.status_code == 200 and len(asset.content) > 100_000
