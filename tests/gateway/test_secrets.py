"""Secret references resolve in one place and every failure names its key."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from core.errors import ConfigErrors, SecretNotFound
from gateway.config_loader import parse_config
from gateway.redaction import LOG_FORMAT, RedactingFormatter, SecretRedactor
from gateway.secrets import resolve_secrets


class DictVault:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    async def get(self, name: str) -> str:
        try:
            return self.values[name]
        except KeyError:
            raise SecretNotFound(name) from None


def write_private(path: Path, text: str, mode: int = 0o600) -> None:
    path.write_text(text)
    os.chmod(path, mode)


async def resolve(text: str, tmp_path: Path, vault: DictVault | None = None) -> list[str]:
    loaded = parse_config(text, path=tmp_path / "switchboard.toml")
    try:
        await resolve_secrets(
            loaded.config, base_dir=tmp_path, vault=vault, redactor=SecretRedactor()
        )
    except ConfigErrors as exc:
        return [e.message for e in exc.errors]
    return []


async def test_env_file_and_vault_references_resolve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SB_TEST_TOKEN", "token-from-env")
    write_private(tmp_path / "key.txt", "key-from-file\nsecond line ignored\n")
    text = """
[gateway]
admin_token = "env:SB_TEST_TOKEN"
[security]
vault_key = "file:key.txt"
[providers.o]
type = "openai"
api_key = "vault:openai"
"""
    loaded = parse_config(text, path=tmp_path / "switchboard.toml")
    redactor = SecretRedactor()
    vault = DictVault({"openai": "sk-from-vault"})
    await resolve_secrets(loaded.config, base_dir=tmp_path, vault=vault, redactor=redactor)
    config = loaded.config
    assert config.gateway.admin_token and config.gateway.admin_token.reveal() == "token-from-env"
    assert config.security.vault_key and config.security.vault_key.reveal() == "key-from-file"
    assert (
        config.providers["o"].api_key and config.providers["o"].api_key.reveal() == "sk-from-vault"
    )
    assert redactor.redact("a token-from-env b sk-from-vault") == "a [redacted] b [redacted]"


async def test_each_unresolvable_reference_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SB_MISSING", raising=False)
    write_private(tmp_path / "open.txt", "x" * 20, mode=0o644)
    text = """
[gateway]
admin_token = "env:SB_MISSING"
[security]
vault_key = "file:open.txt"
[providers.o]
type = "openai"
api_key = "vault:nope"
[providers.m]
type = "mistral"
api_key = "file:absent.txt"
"""
    found = await resolve(text, tmp_path, vault=DictVault({}))
    assert "gateway.admin_token: environment variable SB_MISSING is not set" in found
    assert any(p.startswith("security.vault_key: secret file") and "chmod 600" in p for p in found)
    expected = "providers.o.api_key: vault entry 'nope' not found: add it with "
    assert expected + "`switchboard vault set nope`" in found
    assert any(
        p.startswith("providers.m.api_key: secret file") and "does not exist" in p for p in found
    )


async def test_vault_reference_without_a_vault_is_explained(tmp_path: Path) -> None:
    found = await resolve('[providers.o]\ntype = "openai"\napi_key = "vault:k"\n', tmp_path)
    assert found == [
        "providers.o.api_key: vault:k needs the vault, but [security] vault_key is not set"
    ]


async def test_the_vault_key_cannot_live_in_the_vault(tmp_path: Path) -> None:
    found = await resolve('[security]\nvault_key = "vault:k"\n', tmp_path, vault=DictVault({}))
    assert found == [
        "security.vault_key: the vault key cannot be kept in the vault: use env: or file:"
    ]


def test_log_lines_never_carry_a_resolved_secret() -> None:
    redactor = SecretRedactor()
    redactor.add("hunter2-password")
    formatter = RedactingFormatter(LOG_FORMAT, redactor=redactor)
    try:
        raise RuntimeError("connect failed with hunter2-password")
    except RuntimeError:
        record = logging.LogRecord(
            "t", logging.ERROR, __file__, 1, "login as %s", ("hunter2-password",), None
        )
        import sys

        record.exc_info = sys.exc_info()
    line = formatter.format(record)
    assert "hunter2-password" not in line
    assert "login as [redacted]" in line
    assert "RuntimeError: connect failed with [redacted]" in line
