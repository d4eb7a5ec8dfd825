"""The CLI as an operator uses it: init, check-config, migrate, vault."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from gateway.cli import main


def run(argv: list[str], monkeypatch: pytest.MonkeyPatch, stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(argv)


def test_init_writes_private_secrets_and_never_overwrites(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["init", "--dir", str(tmp_path)]) == 0
    for name in ("vault.key", "admin.token"):
        path = tmp_path / "data" / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert len(path.read_text().strip()) >= 40
    assert (tmp_path / "switchboard.toml").exists()
    key_before = (tmp_path / "data" / "vault.key").read_text()
    capsys.readouterr()
    assert main(["init", "--dir", str(tmp_path)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "data" / "vault.key").read_text() == key_before


def test_check_config_ok_and_bad(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--config", str(workspace)]) == 0
    assert capsys.readouterr().out.startswith("ok: ")
    workspace.write_text(workspace.read_text().replace('type = "echo"', 'type = "antropic"'))
    assert main(["check-config", "--config", str(workspace)]) == 2
    assert (
        "providers.echo.type: unknown provider type 'antropic' (did you mean 'anthropic'?)"
        in capsys.readouterr().err
    )


def test_check_config_names_a_missing_vault_entry(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace.write_text(
        workspace.read_text() + '\n[providers.o]\ntype = "openai"\napi_key = "vault:openai"\n'
    )
    assert main(["check-config", "--config", str(workspace)]) == 2
    assert "providers.o.api_key: vault entry 'openai' not found" in capsys.readouterr().err


def test_config_path_comes_from_the_environment(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SWITCHBOARD_CONFIG", str(workspace))
    assert main(["check-config"]) == 0
    monkeypatch.setenv("SWITCHBOARD_CONFIG", str(workspace.parent / "nope.toml"))
    assert main(["check-config"]) == 2
    assert "switchboard init" in capsys.readouterr().err


def test_migrate_is_idempotent(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["migrate", "--config", str(workspace)]) == 0
    assert "already at the newest schema" in capsys.readouterr().out


def test_vault_round_trip_keeps_values_out_of_the_database(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = ["--config", str(workspace)]
    secret = "sk-test-7f3a9c1e5b2d4f60"
    assert run(["vault", "set", "openai", *cfg], monkeypatch, stdin=secret + "\n") == 0
    assert run(["vault", "set", "anthropic", *cfg], monkeypatch, stdin="other-secret") == 0
    capsys.readouterr()
    assert main(["vault", "list", "--json", *cfg]) == 0
    assert capsys.readouterr().out.strip() == '["anthropic", "openai"]'
    assert main(["vault", "get", "openai", *cfg]) == 0
    assert capsys.readouterr().out == secret + "\n"
    database = (workspace.parent / "data" / "switchboard.db").read_bytes()
    wal = workspace.parent / "data" / "switchboard.db-wal"
    if wal.exists():
        database += wal.read_bytes()
    assert secret.encode() not in database
    assert main(["vault", "delete", "openai", *cfg]) == 0
    assert main(["vault", "get", "openai", *cfg]) == 1
    assert "no vault entry named 'openai'" in capsys.readouterr().err


def test_vault_reference_resolves_after_set(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace.write_text(
        workspace.read_text() + '\n[providers.o]\ntype = "openai"\napi_key = "vault:openai"\n'
    )
    assert (
        run(["vault", "set", "openai", "--config", str(workspace)], monkeypatch, "sk-x1y2z3") == 0
    )
    assert main(["check-config", "--config", str(workspace)]) == 0


def test_wrong_vault_key_changes_nothing(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = ["--config", str(workspace)]
    assert run(["vault", "set", "a", *cfg], monkeypatch, "value-a") == 0
    key_file = workspace.parent / "data" / "vault.key"
    key_file.write_text("not-the-right-passphrase\n")
    before = (workspace.parent / "data" / "switchboard.db").read_bytes()
    assert run(["vault", "set", "b", *cfg], monkeypatch, "value-b") == 2
    assert "vault key does not match" in capsys.readouterr().err
    assert main(["vault", "rotate", *cfg]) == 2
    assert (workspace.parent / "data" / "switchboard.db").read_bytes() == before


def test_rotate_with_a_new_passphrase_updates_the_key_file(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = ["--config", str(workspace)]
    assert run(["vault", "set", "a", *cfg], monkeypatch, "value-a") == 0
    key_file = workspace.parent / "data" / "vault.key"
    old_key = key_file.read_text()
    assert run(["vault", "rotate", "--new-passphrase", *cfg], monkeypatch, "brand-new-pass\n") == 0
    assert key_file.read_text() == "brand-new-pass\n"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert not key_file.with_name("vault.key.new").exists()
    capsys.readouterr()
    assert main(["vault", "get", "a", *cfg]) == 0
    assert capsys.readouterr().out == "value-a\n"
    key_file.write_text(old_key)
    os.chmod(key_file, 0o600)
    assert main(["vault", "get", "a", *cfg]) == 2


def test_vault_commands_need_a_configured_key(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workspace.write_text(workspace.read_text().replace('vault_key = "file:./data/vault.key"', ""))
    assert main(["vault", "list", "--config", str(workspace)]) == 2
    assert "security.vault_key: not set" in capsys.readouterr().err


def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2
