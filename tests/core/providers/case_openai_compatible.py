"""The contract case for ``openai_compatible``: a vLLM-like server, with OpenRouter's headers."""

import functools

from core.providers.openai_compatible import OpenAICompatibleProvider
from tests.core.providers.cases import ProviderCase
from tests.fakes.openai_api import make_app

CASE = ProviderCase(
    type_name="openai_compatible",
    factory=OpenAICompatibleProvider,
    make_app=functools.partial(make_app, flavour="openai_compatible"),
    base_path="/v1",
    extra_headers={"X-Title": "switchboard-tests"},
)
