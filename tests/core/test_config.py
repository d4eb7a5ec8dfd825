"""The config model: every error names its key path; secrets are references only."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ConfigErrors
from gateway.config_loader import parse_config
from gateway.init_cmd import sample_config_text

PATH = Path("/etc/switchboard/switchboard.toml")


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigErrors) as info:
        parse_config(text, path=PATH)
    return [e.message for e in info.value.errors]


def test_the_sample_config_is_valid_and_answers_with_echo() -> None:
    loaded = parse_config(sample_config_text(), path=PATH)
    assert loaded.config.default_provider == "echo"
    assert loaded.config.providers["echo"].type == "echo"
    assert str(loaded.config.gateway.admin_token) == "file:./data/admin.token"


def test_unknown_provider_type_is_named_with_a_suggestion() -> None:
    assert problems('[providers.claude]\ntype = "antropic"\n') == [
        "providers.claude.type: unknown provider type 'antropic' (did you mean 'anthropic'?)"
    ]


def test_unknown_keys_are_errors_with_suggestions() -> None:
    found = problems('[gateway]\nprot = 9000\n[providers.x]\ntype = "echo"\ndefault_modle = "m"\n')
    assert "gateway.prot: unknown key (did you mean 'port'?)" in found
    assert "providers.x.default_modle: unknown key (did you mean 'default_model'?)" in found


def test_unknown_section_lists_known_keys() -> None:
    (line,) = problems("[zzz]\na = 1\n")
    assert line.startswith("zzz: unknown key (known keys: gateway, storage, security")


def test_toml_syntax_error_names_the_line() -> None:
    (line,) = problems('[gateway]\nport = 8080\nhost = "unterminated\n')
    assert "line 3" in line and "TOML syntax error" in line


def test_a_secret_written_in_the_file_is_refused_and_not_echoed() -> None:
    (line,) = problems('[gateway]\nadmin_token = "sk-live-abcdef123456"\n')
    assert line.startswith("gateway.admin_token: secrets are never written in the config file")
    assert "sk-live-abcdef123456" not in line


def test_wrong_value_types_show_the_value() -> None:
    (line,) = problems('[security]\nauto_approve = "extreme"\n')
    assert line.startswith("security.auto_approve:") and "'extreme'" in line


def test_cross_key_rules_are_named() -> None:
    text = """
[gateway]
host = "0.0.0.0"
[providers.a]
type = "openai"
default = true
[providers.b]
type = "echo"
default = true
[routing]
fallbacks = ["b", "c"]
"""
    found = problems(text)
    assert any(p.startswith("gateway.admin_token: required when gateway.host") for p in found)
    assert any(p.startswith("providers.a.api_key: required for type 'openai'") for p in found)
    assert any(
        p.startswith("providers.b.default: only one provider can be the default") for p in found
    )
    assert any(p.startswith("routing.fallbacks[1]: unknown provider 'c'") for p in found)


def test_channel_modes_require_their_secrets() -> None:
    text = """
[channels.telegram]
token = "env:TG"
mode = "webhook"
[channels.slack]
bot_token = "env:SB"
mode = "socket"
"""
    found = problems(text)
    assert "channels.telegram.secret_token: required when mode is 'webhook'" in found
    assert "channels.slack.app_token: required when mode is 'socket'" in found


def test_approvers_must_be_platform_identities() -> None:
    (line,) = problems('[security]\napprovers = ["telegram:1", "bob"]\n')
    assert line.startswith("security.approvers: approver 'bob' is not of the form")


def test_unsupported_database_is_named() -> None:
    (line,) = problems('[storage]\nurl = "mysql://root@localhost/x"\n')
    assert line.startswith("storage.url: unsupported database URL scheme 'mysql'")


def test_relative_sqlite_path_resolves_against_the_config_folder() -> None:
    loaded = parse_config("", path=PATH)
    assert loaded.storage_url == "sqlite+aiosqlite:////etc/switchboard/data/switchboard.db"


def test_dumped_config_shows_references_never_values() -> None:
    loaded = parse_config('[gateway]\nadmin_token = "env:TOKEN"\n', path=PATH)
    ref = loaded.config.gateway.admin_token
    assert ref is not None
    ref.attach("very-secret-value")
    dumped = loaded.config.model_dump_json()
    assert '"admin_token":"env:TOKEN"' in dumped
    assert "very-secret-value" not in dumped and "very-secret-value" not in repr(loaded.config)
