"""The admin API's lists as an operator pages through them: conversations, their history,
/reset over the API, actions and approvals with filters, cursors and next-page headers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from core.approvals import ApprovalPolicy, ApprovalService
from core.security.audit import AuditLog
from core.storage import Database
from core.storage.action_repo import ActionRepository
from core.storage.audit_repo import AuditRepository
from core.storage.conversation_repo import ConversationRepository
from core.types import ActionKind, ChatMessage, ConversationKey, Role, SecurityLevel
from gateway.config_loader import load_config

# Now, not a fixed date: the app's sweeper expires approvals whose deadline has passed.
T0 = datetime.now(UTC).replace(microsecond=0)
Result = TypeVar("Result")


async def seed(workspace: Path, fill: Callable[[Database], Awaitable[Result]]) -> Result:
    """Write straight to the workspace's database (before the app reads it)."""
    db = Database.open(load_config(workspace).storage_url)
    try:
        return await fill(db)
    finally:
        await db.close()


def approvals_at(db: Database, now: datetime) -> ApprovalService:
    clock = lambda: now  # noqa: E731 - every action of a seed at the same instant
    return ApprovalService(
        ActionRepository(db),
        policy=ApprovalPolicy,
        audit=AuditLog(AuditRepository(db)),
        clock=clock,
    )


async def every_page(
    api: httpx.AsyncClient, path: str, params: dict[str, Any]
) -> tuple[list[list[Any]], list[str]]:
    """Follow ``Link: rel=next`` from the first page to the last: (pages, links followed)."""
    pages: list[list[Any]] = []
    links: list[str] = []
    answer = await api.get(path, params=params)
    while True:
        assert answer.status_code == 200, answer.text
        pages.append(answer.json())
        if "link" not in answer.headers:
            assert "x-next-cursor" not in answer.headers
            return pages, links
        url = answer.links["next"]["url"]
        assert url.endswith(f"cursor={answer.headers['x-next-cursor']}")
        links.append(url)
        answer = await api.get(url)


async def test_conversations_page_by_last_activity(api: httpx.AsyncClient, workspace: Path) -> None:
    keys = [ConversationKey(platform="telegram", chat=str(i)) for i in range(5)]
    thread = ConversationKey(platform="slack", chat="C1", thread="1700.1")

    async def fill(db: Database) -> None:
        repo = ConversationRepository(db)
        # Three share one instant: the key breaks the tie, so no page repeats or skips one.
        for i, key in enumerate(keys):
            at = T0 + timedelta(minutes=min(i, 2))
            await repo.append(
                key, [(ChatMessage(role=Role.USER, content="x"), 1)] * i, action_id=None, now=at
            )
        await repo.set_overrides(thread, provider="echo", model="tiny", now=T0 - timedelta(days=1))

    await seed(workspace, fill)
    pages, _ = await every_page(api, "/api/conversations", {"limit": 2})
    assert [len(page) for page in pages] == [2, 2, 2]
    listed = [c["key"] for page in pages for c in page]
    assert listed == [
        "telegram:2",
        "telegram:3",
        "telegram:4",
        "telegram:1",
        "telegram:0",
        "slack:C1:1700.1",
    ]
    first = pages[0][0]
    assert first["message_count"] == 2 and first["platform"] == "telegram"
    latest = T0 + timedelta(minutes=2)
    assert first["last_activity_at"] == latest.isoformat().replace("+00:00", "Z")
    oldest = pages[-1][-1]
    assert (oldest["thread"], oldest["provider"], oldest["model"]) == ("1700.1", "echo", "tiny")
    everything = (await api.get("/api/conversations", params={"limit": 6})).json()
    assert [c["key"] for c in everything] == listed


async def test_history_pages_newest_first(api: httpx.AsyncClient) -> None:
    for i in range(3):
        said = await api.post("/api/chat", json={"message": f"number {i}", "user": "alice"})
        assert said.status_code == 200, said.text
    pages, links = await every_page(api, "/api/conversations/api:alice/messages", {"limit": 4})
    assert [len(page) for page in pages] == [4, 2]
    messages = [m for page in pages for m in page]
    ids = [m["id"] for m in messages]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 6
    assert [(m["role"], m["content"]) for m in messages][-2:] == [
        ("assistant", "echo: number 0"),
        ("user", "number 0"),
    ]
    assert messages[0]["action_id"] and messages[0]["tokens"] > 0
    # The link keeps the path (':' as sent) and the limit.
    assert links[0].startswith("/api/conversations/api:alice/messages?limit=4&cursor=")
    encoded = await api.get("/api/conversations/api%3Aalice/messages", params={"limit": 1})
    assert encoded.json()[0]["id"] == ids[0]


async def test_reset_forgets_like_the_chat_command(api: httpx.AsyncClient) -> None:
    await api.post("/api/chat", json={"message": "remember me", "conversation": "ops"})
    chose = await api.post("/api/chat", json={"message": "/provider echo", "conversation": "ops"})
    assert chose.json()["status"] == "command"
    (before,) = (await api.get("/api/conversations")).json()
    assert before["provider"] == "echo" and before["message_count"] == 2

    reset = await api.post("/api/conversations/api:ops/reset")
    assert reset.status_code == 200, reset.text
    assert reset.json() == {"conversation": "api:ops", "forgotten": 2}
    (after,) = (await api.get("/api/conversations")).json()
    assert (after["key"], after["message_count"], after["provider"]) == ("api:ops", 0, None)
    assert (await api.get("/api/conversations/api:ops/messages")).json() == []

    audited = (await api.get("/api/audit", params={"kind": "conversation.reset"})).json()
    (record,) = audited["records"]
    assert (record["actor"], record["conversation"]) == ("operator:api", "api:ops")
    assert record["data"] == {"messages": 2}
    ledger = (await api.get("/api/actions", params={"status": "succeeded"})).json()
    admin = [a for a in ledger if a["kind"] == "admin"]
    assert admin[0]["payload"] == {"change": "conversation.reset", "conversation": "api:ops"}
    assert admin[0]["requester"] == "operator:api"
    # The next message starts from nothing.
    await api.post("/api/chat", json={"message": "new start", "conversation": "ops"})
    history = (await api.get("/api/conversations/api:ops/messages")).json()
    assert [m["content"] for m in history] == ["echo: new start", "new start"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/conversations/telegram:404/messages"),
        ("POST", "/api/conversations/telegram:404/reset"),
    ],
)
async def test_unknown_or_malformed_conversations(
    api: httpx.AsyncClient, method: str, path: str
) -> None:
    unknown = await api.request(method, path)
    assert unknown.status_code == 404
    assert unknown.json() == {
        "error": {"code": "conversation_not_found", "message": "no conversation 'telegram:404'"}
    }
    for bad in ("telegram", "telegram:", ":42", "a:b%01c"):
        answer = await api.request(method, path.replace("telegram:404", bad))
        assert answer.status_code == 422, (bad, answer.text)
        assert answer.json()["error"]["code"] == "invalid_conversation_key"


async def seed_actions(workspace: Path) -> dict[str, str]:
    """Actions of two conversations and several levels and states; their ids by role."""

    async def fill(db: Database) -> dict[str, str]:
        service = approvals_at(db, T0)
        alice = ConversationKey(platform="telegram", chat="1")
        thread = ConversationKey(platform="slack", chat="C1", thread="9.1")
        ids = {}
        for name, level, key in (
            ("ok", SecurityLevel.LOW, alice),
            ("broken", SecurityLevel.LOW, alice),
            ("waiting", SecurityLevel.CRITICAL, thread),
            ("risky", SecurityLevel.HIGH, alice),
        ):
            requested = await service.request(
                kind=ActionKind.TOOL_CALL,
                level=level,
                payload={"tool": "current_time", "arguments": {"n": name}},
                conversation=key,
                requester=key.platform + ":u",
            )
            ids[name] = requested.action.id
        await service.claim(ids["ok"])
        await service.finish(ids["ok"], result="12:00")
        await service.claim(ids["broken"])
        await service.finish(ids["broken"], error="no clock")
        return ids

    return await seed(workspace, fill)


async def test_actions_filter_by_status_level_and_conversation(
    api: httpx.AsyncClient, workspace: Path
) -> None:
    ids = await seed_actions(workspace)

    async def listed(**params: Any) -> set[str]:
        answer = await api.get("/api/actions", params=params)
        assert answer.status_code == 200, answer.text
        by_id = {v: k for k, v in ids.items()}
        return {by_id[a["id"]] for a in answer.json()}

    assert await listed() == set(ids)
    assert await listed(status=["succeeded", "failed"]) == {"ok", "broken"}
    assert await listed(status="pending_approval") == {"waiting", "risky"}
    assert await listed(level="critical") == {"waiting"}
    assert await listed(level=["high", "critical"], conversation="telegram:1") == {"risky"}
    assert await listed(conversation="slack:C1:9.1") == {"waiting"}
    assert await listed(conversation="slack:C1") == set()

    one = await api.get(f"/api/actions/{ids['broken']}")
    assert one.status_code == 200
    body = one.json()
    assert (body["status"], body["error"], body["level"]) == ("failed", "no clock", "low")
    assert body["conversation"] == "telegram:1" and body["kind"] == "tool_call"
    assert body["payload"] == {"tool": "current_time", "arguments": {"n": "broken"}}
    missing = await api.get("/api/actions/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "action_not_found"
    bad = await api.get("/api/actions", params={"conversation": "telegram"})
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "invalid_conversation_key"
    wrong_level = await api.get("/api/actions", params={"level": "extreme"})
    assert wrong_level.status_code == 422


async def test_approvals_and_actions_page_through_ties(
    api: httpx.AsyncClient, workspace: Path
) -> None:
    async def fill(db: Database) -> list[str]:
        made = []
        # Seven at one instant and two later: paging must break ties by id.
        for i in range(9):
            service = approvals_at(db, T0 + timedelta(seconds=max(0, i - 6)))
            requested = await service.request(
                kind=ActionKind.TOOL_CALL,
                level=SecurityLevel.CRITICAL,
                payload={"tool": "shell", "arguments": {"argv": ["echo", str(i)]}},
                conversation=ConversationKey(platform="telegram", chat="7"),
                requester="telegram:7",
            )
            assert requested.approval is not None
            made.append(requested.approval.id)
        return made

    made = await seed(workspace, fill)
    pages, links = await every_page(api, "/api/approvals", {"status": "pending", "limit": 4})
    assert [len(page) for page in pages] == [4, 4, 1]
    listed = [a["id"] for page in pages for a in page]
    assert sorted(listed) == sorted(made)
    assert set(listed[:2]) == set(made[7:])
    assert all("status=pending" in link and "limit=4" in link for link in links)
    assert [a["arguments"]["argv"][1] for a in pages[0][:2]] == ["8", "7"]

    action_pages, _ = await every_page(
        api, "/api/actions", {"status": "pending_approval", "level": "critical", "limit": 2}
    )
    assert [len(page) for page in action_pages] == [2, 2, 2, 2, 1]
    actions = [a["id"] for page in action_pages for a in page]
    assert len(set(actions)) == 9
    assert (await api.get("/api/approvals", params={"status": "approved"})).json() == []


async def test_audit_pages_by_cursor_or_after_seq(api: httpx.AsyncClient) -> None:
    # Every request of the app appends a few records; there are some at start already.
    for i in range(3):
        await api.post("/api/chat", json={"message": f"m{i}"})
    total = len((await api.get("/api/audit", params={"limit": 1000})).json()["records"])
    assert total > 6
    first = await api.get("/api/audit", params={"limit": 3})
    body = first.json()
    assert [r["seq"] for r in body["records"]] == [1, 2, 3] and body["next_after_seq"] == 3
    by_cursor = await api.get(first.links["next"]["url"])
    by_seq = await api.get("/api/audit", params={"limit": 3, "after_seq": 3})
    assert [r["seq"] for r in by_cursor.json()["records"]] == [4, 5, 6]
    assert by_cursor.json() == by_seq.json()
    assert by_cursor.headers["x-next-cursor"] == by_seq.headers["x-next-cursor"]
    pages, links = await every_page(api, "/api/audit", {"limit": 3, "after_seq": 2})
    seqs = [r["seq"] for page in pages for r in page["records"]]
    assert seqs == list(range(3, total + 1))
    assert not any("after_seq" in link for link in links)
    assert pages[-1]["next_after_seq"] is None


async def test_bad_limits_and_cursors_are_422(api: httpx.AsyncClient) -> None:
    lists = ["/api/conversations", "/api/approvals", "/api/actions", "/api/audit"]
    for _ in range(2):  # so that every list has a second page
        await api.post("/api/chat", json={"message": "hello"})
    lists.append("/api/conversations/api:admin/messages")
    cursors = {}
    for path in lists:
        for limit in (0, 1001, "x"):
            answer = await api.get(path, params={"limit": limit})
            assert answer.status_code == 422, (path, limit)
            assert answer.json()["error"]["code"] == "invalid_request"
        garbage = await api.get(path, params={"cursor": "not-a-cursor"})
        assert garbage.status_code == 422
        assert garbage.json()["error"]["code"] == "invalid_cursor"
        cursors[path] = (await api.get(path, params={"limit": 1})).headers.get("x-next-cursor")
    actions_cursor = cursors["/api/actions"]
    assert actions_cursor is not None
    for path in lists:
        if path != "/api/actions":
            wrong = await api.get(path, params={"cursor": actions_cursor})
            assert wrong.status_code == 422, path
            assert "not a cursor of this list" in wrong.json()["error"]["message"]
    both = await api.get("/api/audit", params={"after_seq": 1, "cursor": cursors["/api/audit"]})
    assert both.status_code == 422
    assert both.json()["error"]["message"] == "give either after_seq or cursor, not both"


async def test_the_new_routes_need_the_admin_token(api: httpx.AsyncClient) -> None:
    del api.headers["Authorization"]
    for method, path in (
        ("GET", "/api/conversations"),
        ("GET", "/api/conversations/api:admin/messages"),
        ("POST", "/api/conversations/api:admin/reset"),
        ("GET", "/api/actions/anything"),
    ):
        answer = await api.request(method, path)
        assert answer.status_code == 401, path
        assert answer.json()["error"]["code"] == "unauthorized"
