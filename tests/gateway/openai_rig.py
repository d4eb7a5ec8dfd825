"""A running gateway for the ``/v1`` tests, over loopback fakes of two provider APIs.

``gpt`` is the OpenAI fake (the default provider), ``claude`` the Anthropic fake (its
fallback), ``down`` an OpenAI-compatible provider nobody listens for (its listing fails).
The app is served by uvicorn on a free loopback port, its lifespan run, as in production.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest
from asgi_lifespan import LifespanManager

from gateway.config_loader import load_config
from gateway.redaction import SecretRedactor
from gateway.wiring import build_app
from tests.fakes import anthropic_api, openai_api
from tests.fakes.llm_script import Script
from tests.fakes.server import closed_port_url, serve_app
from tests.gateway.conftest import admin_token

OPENAI_KEY = "sk-test-openai-0123456789"
ANTHROPIC_KEY = "sk-ant-test-0123456789"
LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "search the docs",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    },
}


@dataclass
class Gateway:
    url: str
    token: str
    gpt: Script
    claude: Script

    def client(self, api_key: str | None = None) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=f"{self.url}/v1", api_key=api_key or self.token, max_retries=0
        )

    def sync_client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=self.token, max_retries=0)


def configure(workspace: Path, *, gpt_url: str, claude_url: str) -> None:
    text = workspace.read_text().replace("default = true\n", "")
    text = text.replace("fallbacks = []", 'fallbacks = ["claude"]')
    text += f"""
[providers.gpt]
type = "openai"
base_url = "{gpt_url}/v1"
api_key = "env:SB_TEST_OPENAI_KEY"
default_model = "fake-small"
default = true
max_retries = 0

[providers.claude]
type = "anthropic"
base_url = "{claude_url}"
api_key = "env:SB_TEST_ANTHROPIC_KEY"
default_model = "fake-small"
max_retries = 0

[providers.down]
type = "openai_compatible"
base_url = "{closed_port_url()}/v1"
default_model = "nothing"
max_retries = 0
"""
    workspace.write_text(text)


@asynccontextmanager
async def running_gateway(workspace: Path) -> AsyncIterator[str]:
    """The app built from ``workspace``, lifespan run, served by uvicorn on a free port."""
    app = build_app(load_config(workspace), redactor=SecretRedactor())
    lifespan = LifespanManager(app, startup_timeout=30, shutdown_timeout=30)
    async with lifespan as manager, serve_app(manager.app) as url:
        yield url


@asynccontextmanager
async def openai_gateway(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Gateway]:
    """The gateway of the module doc on ``workspace``, with both fakes serving."""
    gpt = Script(api_key=OPENAI_KEY, models=["fake-small", "gpt-only"])
    claude = Script(api_key=ANTHROPIC_KEY, models=["fake-small", "claude-only"])
    monkeypatch.setenv("SB_TEST_OPENAI_KEY", OPENAI_KEY)
    monkeypatch.setenv("SB_TEST_ANTHROPIC_KEY", ANTHROPIC_KEY)
    async with (
        serve_app(openai_api.make_app(gpt)) as gpt_url,
        serve_app(anthropic_api.make_app(claude)) as claude_url,
    ):
        configure(workspace, gpt_url=gpt_url, claude_url=claude_url)
        async with running_gateway(workspace) as url:
            yield Gateway(url, admin_token(workspace), gpt, claude)
