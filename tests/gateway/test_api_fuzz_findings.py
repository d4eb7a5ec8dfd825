"""What the schemathesis run (test_api_fuzz.py) found, each pinned by the request that showed it."""

from __future__ import annotations

import base64
import json

import httpx


async def test_positions_beyond_the_database_range_are_422_not_500(api: httpx.AsyncClient) -> None:
    huge = 2**64
    answer = await api.get("/api/audit", params={"after_seq": huge})
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "invalid_request"
    forged = base64.urlsafe_b64encode(json.dumps(["audit", huge]).encode()).decode().rstrip("=")
    answer = await api.get("/api/audit", params={"cursor": forged})
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "invalid_cursor"


async def test_a_stream_for_an_unknown_provider_is_a_404(api: httpx.AsyncClient) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "provider": "0", "stream": True}
    answer = await api.post("/api/chat/multi", json=body)
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["error"]["code"] == "provider_not_found"


async def test_bodies_are_taken_as_the_schema_types_them(api: httpx.AsyncClient) -> None:
    messages = [{"role": "user", "content": "hi"}]
    for field, value in (("temperature", False), ("temperature", "0.5"), ("stream", "true")):
        answer = await api.post("/api/chat/multi", json={"messages": messages, field: value})
        assert answer.status_code == 422, (field, value)
        assert answer.json()["error"]["message"].startswith(f"{field}: ")
    # JSON Schema counts 5.0 as an integer, so it is one.
    whole = await api.post("/api/chat/multi", json={"messages": messages, "max_tokens": 5.0})
    assert whole.status_code == 200, whole.text
    for value in (True, "5", 5.5, 0):
        answer = await api.post("/api/chat/multi", json={"messages": messages, "max_tokens": value})
        assert answer.status_code == 422, value
    coerced = await api.post("/api/chat", json={"message": "hi", "stream": "yes"})
    assert coerced.status_code == 422
    assert coerced.json()["error"]["message"].startswith("stream: ")


async def test_an_empty_conversation_filter_is_no_filter(api: httpx.AsyncClient) -> None:
    await api.post("/api/chat", json={"message": "hi"})
    everything = (await api.get("/api/actions")).json()
    assert everything
    assert (await api.get("/api/actions", params={"conversation": ""})).json() == everything
