"""Provider types: built-in ones, and third-party ones from the entry-point group."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.config import GatewayConfig
from core.errors import ProviderNotFound
from core.providers import registry
from core.providers.base import ProviderOptions
from core.types import ChatMessage, ChatRequest, Role

PLUGIN = """
from core.providers.echo import EchoProvider


class ShoutProvider(EchoProvider):
    type_name = "shout"

    async def chat(self, request):
        result = await super().chat(request)
        return result.model_copy(update={"content": result.content.upper()})


def make(options, client):
    return ShoutProvider(name=options.name)
"""


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An installed distribution declaring a provider in ``switchboard.providers``."""
    (tmp_path / "sb_shout.py").write_text(PLUGIN)
    dist = tmp_path / "sb_shout-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: sb-shout\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[switchboard.providers]\nshout = sb_shout:make\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry._third_party.cache_clear()
    yield
    registry._third_party.cache_clear()
    sys.modules.pop("sb_shout", None)


def test_builtin_types() -> None:
    assert {
        "echo",
        "ollama",
        "openai",
        "openai_compatible",
        "anthropic",
        "google",
        "mistral",
    } <= set(registry.known_types())


def test_an_unknown_type_is_named_with_a_suggestion() -> None:
    with pytest.raises(
        ProviderNotFound, match=r"unknown provider type 'olama' \(did you mean 'ollama'\?\)"
    ):
        registry.provider_factory("olama")


async def test_a_third_party_provider_is_configurable_and_answers(plugin: None) -> None:
    assert "shout" in registry.known_types()
    config = GatewayConfig.model_validate({"providers": {"loud": {"type": "shout"}}})
    assert config.providers["loud"].type == "shout"
    factory = registry.provider_factory("shout")
    async with httpx.AsyncClient() as client:
        provider = factory(ProviderOptions(name="loud", type_name="shout", base_url=""), client)
        request = ChatRequest(messages=(ChatMessage(role=Role.USER, content="hi"),))
        assert (await provider.chat(request)).content == "ECHO: HI"
