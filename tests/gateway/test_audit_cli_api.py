"""The audit log as an operator sees it: `audit verify|tail`, /api/audit, and what is audited."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import re
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.security.audit import AuditLog
from core.storage import Database
from core.storage.audit_repo import AuditRepository
from gateway.cli import main
from gateway.config_loader import load_config
from tests.gateway.conftest import app_client

VALUE = "sk-proj-very-secret-value-42"


def db_file(workspace: Path) -> Path:
    return workspace.parent / "data" / "switchboard.db"


def sql(workspace: Path, statement: str) -> list[Any]:
    """Run one statement on the workspace's SQLite file, as someone with file access would."""
    with closing(sqlite3.connect(db_file(workspace))) as conn, conn:
        return conn.execute(statement).fetchall()


def vault(
    args: list[str], workspace: Path, monkeypatch: pytest.MonkeyPatch, stdin: str = ""
) -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(["vault", *args, "--config", str(workspace)])


def tail_json(workspace: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert main(["audit", "tail", "-n", "100", "--json", "--config", str(workspace)]) == 0
    records: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return records


def test_vault_actions_are_audited_without_the_value(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert vault(["set", "openai"], workspace, monkeypatch, VALUE + "\n") == 0
    assert vault(["get", "openai"], workspace, monkeypatch) == 0
    assert VALUE in capsys.readouterr().out
    assert vault(["list"], workspace, monkeypatch) == 0
    assert vault(["rotate"], workspace, monkeypatch) == 0
    assert vault(["delete", "openai"], workspace, monkeypatch) == 0
    assert vault(["get", "openai"], workspace, monkeypatch) == 1  # a failure leaves no record

    everything = tail_json(workspace, capsys)
    records = [r for r in everything if r["kind"].startswith("vault.")]
    assert [(r["kind"], r["actor"]) for r in records] == [
        ("vault.set", "operator:cli"),
        ("vault.get", "operator:cli"),
        ("vault.rotate", "operator:cli"),
        ("vault.delete", "operator:cli"),
    ]
    assert [r["seq"] for r in everything] == list(range(1, len(everything) + 1))
    assert records[0]["data"] == {"name": "openai"}
    assert records[2]["data"] == {"reencrypted": 1, "new_vault_key": False}
    # Changes (not reads) are admin actions in the ledger too, at the critical level.
    actions = sql(workspace, "SELECT kind, level, status, payload FROM actions ORDER BY created_at")
    assert [(a[0], a[1], a[2]) for a in actions] == [("admin", "critical", "succeeded")] * 3
    assert [json.loads(a[3])["change"] for a in actions] == [
        "vault.set",
        "vault.rotate",
        "vault.delete",
    ]
    rows = sql(workspace, "SELECT * FROM audit_log")
    assert VALUE not in repr(rows)
    passphrase = (workspace.parent / "data" / "vault.key").read_text().strip()
    assert passphrase not in repr(rows)


def test_verify_is_ok_then_names_the_first_bad_seq(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = ["--config", str(workspace)]
    assert main(["audit", "verify", *cfg]) == 0
    assert capsys.readouterr().out.strip() == "ok: 0 records"
    for name in ("a", "b", "c"):
        assert vault(["set", name], workspace, monkeypatch, f"value-of-{name}") == 0
    capsys.readouterr()
    assert main(["audit", "verify", *cfg]) == 0
    # Each set is an admin action: requested, running, vault.set, finished.
    assert capsys.readouterr().out.strip() == "ok: 12 records"

    sql(workspace, """UPDATE audit_log SET data = '{"name":"z"}' WHERE seq = 2""")
    assert main(["audit", "verify", *cfg]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "audit chain broken at seq 2: hash does not match its contents" in captured.err
    assert main(["audit", "verify", "--json", *cfg]) == 1
    assert json.loads(capsys.readouterr().out) == {
        "ok": False,
        "count": 12,
        "first_bad_seq": 2,
        "problem": "hash does not match its contents",
    }

    sql(workspace, "DELETE FROM audit_log WHERE seq = 2")
    assert main(["audit", "verify", *cfg]) == 1
    assert "audit chain broken at seq 3: record 2 is missing" in capsys.readouterr().err


def test_tail_prints_one_line_per_record(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("first", "second", "third"):
        assert vault(["set", name], workspace, monkeypatch, "some-value") == 0
    assert vault(["get", "third"], workspace, monkeypatch) == 0  # one record, the 13th
    capsys.readouterr()
    assert main(["audit", "tail", "-n", "2", "--config", str(workspace)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    pattern = (
        r"13 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00 vault\.get operator:cli - - "
        r'\{"name":"third"\}'
    )
    assert re.fullmatch(pattern, lines[1]), lines[1]
    assert lines[0].startswith("12 ") and "action.finished" in lines[0]
    assert main(["audit", "tail", "-n", "0", "--config", str(workspace)]) == 2


async def _append(workspace: Path, n: int) -> None:
    """Records written by another process (a CLI, a second replica) on the same database."""
    db = Database.open(load_config(workspace).storage_url)
    try:
        log = AuditLog(AuditRepository(db))
        for i in range(n):
            await log.append("test.kind" if i % 2 else "other.kind", data={"i": i})
    finally:
        await db.close()


async def test_api_pages_through_the_log(api: httpx.AsyncClient, workspace: Path) -> None:
    await _append(workspace, 5)
    first = (await api.get("/api/audit", params={"limit": 2})).json()
    assert [r["seq"] for r in first["records"]] == [1, 2]
    assert first["next_after_seq"] == 2
    assert set(first["records"][0]) == {
        "seq",
        "at",
        "kind",
        "actor",
        "conversation",
        "action_id",
        "data",
        "prev_hash",
        "hash",
    }
    assert first["records"][1]["prev_hash"] == first["records"][0]["hash"]
    second = (await api.get("/api/audit", params={"after_seq": 2, "limit": 2})).json()
    assert [r["seq"] for r in second["records"]] == [3, 4]
    last = (await api.get("/api/audit", params={"after_seq": 4, "limit": 2})).json()
    assert [r["seq"] for r in last["records"]] == [5]
    assert last["next_after_seq"] is None
    exact = (await api.get("/api/audit", params={"limit": 5})).json()
    assert exact["next_after_seq"] is None
    kinds = (await api.get("/api/audit", params={"kind": "test.kind"})).json()
    assert [r["data"]["i"] for r in kinds["records"]] == [1, 3]
    everything = (await api.get("/api/audit", params={"kind": ""})).json()
    assert len(everything["records"]) == 5
    for bad in ({"limit": 0}, {"limit": 1001}, {"after_seq": -1}):
        answer = await api.get("/api/audit", params=bad)
        assert answer.status_code == 422
        assert answer.json()["error"]["code"] == "invalid_request"


async def test_api_verify_reports_a_broken_chain_with_200(
    api: httpx.AsyncClient, workspace: Path
) -> None:
    await _append(workspace, 4)
    assert (await api.get("/api/audit/verify")).json() == {
        "ok": True,
        "count": 4,
        "first_bad_seq": None,
        "problem": None,
    }
    sql(workspace, "UPDATE audit_log SET seq = 10 WHERE seq = 3")
    answer = await api.get("/api/audit/verify")
    assert answer.status_code == 200
    assert answer.json() == {
        "ok": False,
        "count": 4,
        "first_bad_seq": 4,
        "problem": "record 3 is missing",
    }


async def test_audit_routes_need_the_admin_token(api: httpx.AsyncClient) -> None:
    for path in ("/api/audit", "/api/audit/verify"):
        answer = await api.get(path, headers={"Authorization": ""})
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "unauthorized"


async def test_a_config_reload_is_audited(api: httpx.AsyncClient, workspace: Path) -> None:
    text = workspace.read_text().replace('auto_approve = "low"', 'auto_approve = "medium"')
    workspace.write_text(text)
    reloaded = (await api.post("/api/config/reload")).json()
    assert reloaded["applied"] is True
    page = (await api.get("/api/audit", params={"kind": "config.applied"})).json()
    (record,) = page["records"]
    assert record["actor"] == "gateway:reload"
    assert record["data"] == {
        "generation": 2,
        "path": str(workspace),
        "digest": hashlib.sha256(text.encode()).hexdigest(),
        "vault_reads": [],
    }
    assert (await api.get("/api/audit/verify")).json()["ok"] is True


async def test_the_gateway_records_which_vault_entries_it_reads(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = workspace.read_text() + '\n[providers.o]\ntype = "openai"\napi_key = "vault:openai"\n'
    workspace.write_text(text)
    assert await asyncio.to_thread(vault, ["set", "openai"], workspace, monkeypatch, VALUE) == 0
    async with app_client(workspace) as api:
        page = (await api.get("/api/audit", params={"kind": "vault.read"})).json()
    (record,) = page["records"]
    assert record["actor"] == "gateway:startup"
    assert record["data"] == {"names": ["openai"]}
    assert VALUE not in json.dumps(page)
