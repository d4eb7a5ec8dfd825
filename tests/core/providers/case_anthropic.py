"""The Anthropic provider against its loopback fake, for the contract suite."""

from __future__ import annotations

from core.providers.anthropic import AnthropicProvider
from tests.core.providers.cases import ProviderCase
from tests.fakes.anthropic_api import make_app

# base_url is the bare origin, like the official SDK's: the provider adds /v1/...
CASE = ProviderCase(
    type_name="anthropic", factory=AnthropicProvider, make_app=make_app, base_path=""
)
