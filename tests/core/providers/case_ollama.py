"""The Ollama provider in the contract suite, against its loopback fake."""

from __future__ import annotations

from core.providers.ollama import OllamaProvider
from tests.core.providers.cases import ProviderCase
from tests.fakes.ollama_api import make_app

# A local Ollama takes no key; the fake only refuses a wrong one, like a proxy would.
CASE = ProviderCase(
    type_name="ollama",
    factory=OllamaProvider,
    make_app=make_app,
    base_path="",
    authenticated=False,
)
