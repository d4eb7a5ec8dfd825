"""Schemathesis against the app's own OpenAPI document, in process (ASGI), with the admin token.

Every documented operation gets generated requests, valid and invalid ones: no answer may
be a 5xx, every answer must match what the document says (status, content type, headers,
body schema), and none may take longer than the request timeout. Deterministic (fixed
seed, derandomized), so a failure replays the same way.

The document is what ``/openapi.json`` serves, taken from an app built (never started)
at import, because ``@schema.parametrize()`` needs it when pytest collects; the requests
go to a started app over a fresh workspace per operation. (``schemathesis.pytest
.from_fixture`` would fetch it at run time, but does not work with pytest 9 yet.) The
gateway runs offline: the ``switchboard init`` workspace answers with the echo provider,
and nothing leaves 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.python import asgi

from gateway.config_loader import load_config, parse_config
from gateway.redaction import SecretRedactor
from gateway.wiring import build_app

REQUEST_TIMEOUT_S = 10
# Written as each workspace's admin token, so that schemathesis knows the credentials (and
# leaves them alone when it makes a request invalid on purpose).
FUZZ_TOKEN = "fuzz-admin-token-not-a-secret-0123456789"
# A registered provider is contacted by later requests (health probes, model listings); a
# fuzzed base_url would send those anywhere. The discard port refuses connections at once.
LOOPBACK_URL = "http://127.0.0.1:9"
PAGED_LISTS = r"^/api/(approvals|actions|audit|conversations|conversations/\{key\}/messages)$"

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20261124,
        "request-timeout": REQUEST_TIMEOUT_S,
        "auth": {"openapi": {"adminToken": {"bearer": FUZZ_TOKEN}}},
        "generation": {"max-examples": 15, "deterministic": True, "mode": "all"},
        "phases": {"stateful": {"enabled": False}},
        "operations": [
            {
                # A cursor is opaque: any string fits its schema, but only the ones a page
                # handed out are accepted; the others are refused with 422 invalid_cursor.
                "include-path-regex": PAGED_LISTS,
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "401", "403", "404", "409", "422", "429"]
                    }
                },
            },
            {
                # The OpenAI format ties fields to the role (a tool message needs the id of
                # the call it answers, an assistant message content or tool calls), which a
                # schema shared by all roles cannot say; OpenAI refuses those with 400 too.
                "include-path": "/v1/chat/completions",
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "400", "401", "403", "404", "409", "429"]
                    }
                },
            },
            {
                # Whether api_key is needed depends on the type, which the schema cannot say;
                # a keyed type without one, or an unknown type, is refused with 400.
                "include-path": "/api/providers/register",
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "400", "401", "403", "404", "409", "429"]
                    }
                },
            },
        ],
    }
)


def _served_document() -> dict[str, object]:
    sample = resources.files("gateway").joinpath("sample_config.toml").read_text()
    app = build_app(parse_config(sample, path=Path("switchboard.toml")))
    return app.openapi()


schema = schemathesis.openapi.from_dict(_served_document(), config=CONFIG)


@pytest.fixture
def gateway(workspace: Path) -> Iterator[FastAPI]:
    """An app over a fresh workspace, started (lifespan run) for the whole operation."""
    (workspace.parent / "data" / "admin.token").write_text(FUZZ_TOKEN + "\n")
    app = build_app(load_config(workspace), redactor=SecretRedactor())
    try:
        with asgi.get_client(app):
            yield app
    finally:
        # Schemathesis keeps an app's lifespan running until the interpreter exits; this
        # test's app must stop (its database, its tasks) before the next test starts.
        asgi.shutdown_lifespans()


@pytest.mark.slow
@schema.parametrize()
# One gateway per operation serves all of that operation's examples, on purpose.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_api_answers_as_documented(case: Case, gateway: FastAPI) -> None:
    """No 5xx, no undocumented status, body or header, no hang."""
    if case.path == "/api/providers/register" and isinstance(case.body, dict):
        if case.body.get("base_url") is None or isinstance(case.body["base_url"], str):
            case.body["base_url"] = LOOPBACK_URL  # as valid as what it replaces
    # What from_asgi would have set: every request of the case, and every probe a check
    # sends after it, goes to this app in process.
    case.operation.app = case.operation.schema.app = gateway
    case.call_and_validate(timeout=REQUEST_TIMEOUT_S)
