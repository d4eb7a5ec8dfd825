"""How the contract suite finds every provider: one ``case_<type>.py`` module each.

A case module defines ``CASE = ProviderCase(...)``: the provider's factory and the ASGI
app of its loopback fake (``tests/fakes/``), built over a shared :class:`Script`.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from starlette.types import ASGIApp

from core.ports import Provider
from core.providers.base import ProviderFactory, ProviderOptions
from tests.fakes.llm_script import Script
from tests.fakes.server import serve_app


@dataclass(frozen=True)
class ProviderCase:
    """One provider type and its fake."""

    type_name: str
    factory: ProviderFactory
    make_app: Callable[[Script], ASGIApp]
    # What base_url looks like for this API: "/v1" for OpenAI-style, "" for a bare origin.
    base_path: str = ""
    default_model: str = "fake-small"
    extra_headers: dict[str, str] = field(default_factory=dict)
    # False for APIs that take no key (a local Ollama): the wrong-key test does not apply.
    authenticated: bool = True

    def options(self, base_url: str, **overrides: object) -> ProviderOptions:
        """Options pointing at a fake served at ``base_url``."""
        values: dict[str, object] = {
            "name": f"my-{self.type_name}",
            "type_name": self.type_name,
            "base_url": base_url + self.base_path,
            "api_key": "test-key",
            "default_model": self.default_model,
            "timeout": httpx.Timeout(5.0, connect=2.0),
            "headers": self.extra_headers,
        }
        values.update(overrides)
        return ProviderOptions(**values)  # type: ignore[arg-type]


@dataclass
class Running:
    """A provider talking to its fake over loopback HTTP."""

    case: ProviderCase
    script: Script
    provider: Provider
    base_url: str
    client: httpx.AsyncClient


@asynccontextmanager
async def running(case: ProviderCase, **overrides: object) -> AsyncIterator[Running]:
    """Serve the case's fake and build its provider against it."""
    script = Script()
    async with serve_app(case.make_app(script)) as base_url, httpx.AsyncClient() as client:
        provider = case.factory(case.options(base_url, **overrides), client)
        try:
            yield Running(case, script, provider, base_url, client)
        finally:
            await provider.close()


def discover() -> list[ProviderCase]:
    """Every ``CASE`` of the ``case_*.py`` modules beside this file."""
    found = []
    here = Path(__file__).parent
    for module in sorted(pkgutil.iter_modules([str(here)]), key=lambda m: m.name):
        if module.name.startswith("case_"):
            found.append(importlib.import_module(f"{__package__}.{module.name}").CASE)
    return found
