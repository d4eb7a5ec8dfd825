"""The contract case for ``openai``: base_url ends in /v1."""

from core.providers.openai import OpenAIProvider
from tests.core.providers.cases import ProviderCase
from tests.fakes.openai_api import make_app

CASE = ProviderCase(
    type_name="openai",
    factory=OpenAIProvider,
    make_app=make_app,
    base_path="/v1",
)
