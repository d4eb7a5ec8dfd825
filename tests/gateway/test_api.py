"""The admin API skeleton: health, readiness, token auth and the error shape."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.gateway.conftest import admin_token


async def test_healthz_and_readyz_need_no_token(api: httpx.AsyncClient) -> None:
    del api.headers["Authorization"]
    assert (await api.get("/healthz")).json() == {"status": "ok"}
    ready = await api.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["config"]["ok"] is True


async def test_api_routes_need_the_admin_token(api: httpx.AsyncClient, workspace: Path) -> None:
    token = admin_token(workspace)
    missing = await api.get("/api/status", headers={"Authorization": ""})
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthorized"
    wrong = await api.get("/api/status", headers={"Authorization": f"Bearer {token}x"})
    assert wrong.status_code == 401
    basic = await api.get("/api/status", headers={"Authorization": f"Basic {token}"})
    assert basic.status_code == 401
    ok = await api.get("/api/status")
    assert ok.status_code == 200
    assert ok.json()["default_provider"] == "echo"


async def test_unknown_protected_paths_answer_401_before_404(api: httpx.AsyncClient) -> None:
    assert (await api.get("/v1/nothing", headers={"Authorization": ""})).status_code == 401
    assert (await api.get("/api/nothing", headers={"Authorization": ""})).status_code == 401
    found = await api.get("/api/nothing")
    assert found.status_code == 404
    assert found.json() == {"error": {"code": "not_found", "message": "Not Found"}}


async def test_bad_json_is_a_400_in_the_error_shape(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/api/config/validate", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    wrong_shape = await api.post("/api/config/validate", json={"txt": 1})
    assert wrong_shape.status_code == 422
    assert wrong_shape.json()["error"]["code"] == "invalid_request"
    assert "text" in wrong_shape.json()["error"]["message"]


async def test_wrong_method_keeps_the_error_shape(api: httpx.AsyncClient) -> None:
    response = await api.delete("/api/status")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


async def test_config_validate_names_the_bad_key(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/api/config/validate", json={"text": '[providers.c]\ntype = "antropic"\n'}
    )
    assert response.json() == {
        "ok": False,
        "errors": [
            "providers.c.type: unknown provider type 'antropic' (did you mean 'anthropic'?)"
        ],
    }


async def test_config_answer_carries_references_not_secrets(
    api: httpx.AsyncClient, workspace: Path
) -> None:
    body = (await api.get("/api/config")).text
    assert "file:./data/admin.token" in body
    assert admin_token(workspace) not in body
    vault_key = (workspace.parent / "data" / "vault.key").read_text().strip()
    assert vault_key not in body


async def test_openapi_documents_the_hot_path_bodies(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/openapi.json")).json()
    body = spec["paths"]["/api/chat/multi"]["post"]["requestBody"]
    ref = body["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/ChatMultiBody"
    schemas = spec["components"]["schemas"]
    assert {"ChatMultiBody", "MessageIn", "ToolIn", "ToolCallIn"} <= set(schemas)
    assert "x-switchboard-components" not in str(spec)
