"""The contract case for ``mistral``: base_url is the bare origin."""

import functools

from core.providers.mistral import MistralProvider
from tests.core.providers.cases import ProviderCase
from tests.fakes.openai_api import make_app

CASE = ProviderCase(
    type_name="mistral",
    factory=MistralProvider,
    make_app=functools.partial(make_app, flavour="mistral"),
    base_path="",
)
