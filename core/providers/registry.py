"""Provider types by name: the built-in ones, and third-party ones from entry points.

A third-party package registers ``name = "package.module:factory"`` in the entry-point
group ``switchboard.providers``; the factory takes ``(ProviderOptions, httpx.AsyncClient)``.
"""

from __future__ import annotations

import functools
import importlib
from importlib.metadata import entry_points

import httpx

from core.errors import ProviderNotFound
from core.ports import Provider
from core.providers.base import ProviderFactory, ProviderOptions
from core.providers.echo import EchoProvider
from core.suggest import did_you_mean

ENTRY_POINT_GROUP = "switchboard.providers"

# Imported on first use, so a gateway that runs only Ollama never imports the others.
_BUILTIN: dict[str, str] = {
    "ollama": "core.providers.ollama:OllamaProvider",
    "openai": "core.providers.openai:OpenAIProvider",
    "openai_compatible": "core.providers.openai_compatible:OpenAICompatibleProvider",
    "anthropic": "core.providers.anthropic:AnthropicProvider",
    "google": "core.providers.google:GoogleProvider",
    "mistral": "core.providers.mistral:MistralProvider",
}


def _echo(options: ProviderOptions, client: httpx.AsyncClient) -> Provider:
    return EchoProvider(name=options.name)


@functools.cache
def _third_party() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def known_types() -> list[str]:
    """Every provider type name that can be configured."""
    return sorted({"echo", *_BUILTIN, *_third_party()})


def provider_factory(type_name: str) -> ProviderFactory:
    """The factory for ``type_name``; raises ``ProviderNotFound`` with a suggestion."""
    if type_name == "echo":
        return _echo
    target = _BUILTIN.get(type_name) or _third_party().get(type_name)
    if target is None:
        raise ProviderNotFound(
            f"unknown provider type {type_name!r}{did_you_mean(type_name, known_types())}"
        )
    module_name, _, attribute = target.partition(":")
    factory: ProviderFactory = getattr(importlib.import_module(module_name), attribute)
    return factory
