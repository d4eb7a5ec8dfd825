"""The Gemini provider and its loopback fake, for the contract suite."""

from __future__ import annotations

from core.providers.google import GoogleProvider
from tests.core.providers.cases import ProviderCase
from tests.fakes.google_api import make_app

# base_url is the bare origin (https://generativelanguage.googleapis.com): no base_path.
CASE = ProviderCase(type_name="google", factory=GoogleProvider, make_app=make_app, base_path="")
