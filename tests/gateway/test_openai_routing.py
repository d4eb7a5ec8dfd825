"""Which provider a ``/v1`` model goes to, over a real ProviderManager and the OpenAI fake."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from core.errors import ProviderNotFound
from core.providers.base import ProviderOptions
from core.providers.manager import ProviderManager, ProviderSpec, RoutingPolicy
from gateway.api.openai_routing import ModelRouter, Route
from tests.fakes import openai_api
from tests.fakes.llm_script import Script
from tests.fakes.server import closed_port_url, serve_app


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    manager: ProviderManager
    router: ModelRouter
    clock: FakeClock
    script: Script
    specs: list[ProviderSpec]

    async def use(self, *extra: ProviderSpec) -> None:
        await self.manager.apply(
            [*self.specs, *extra], policy=RoutingPolicy(models_cache_s=300), default="echo"
        )


def echo(name: str, *models: str) -> ProviderSpec:
    return ProviderSpec(options=ProviderOptions(name, "echo", "", models=models))


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    script = Script(api_key="k", models=["only-gpt"])
    async with serve_app(openai_api.make_app(script)) as url:
        clock = FakeClock()
        manager = ProviderManager(clock=clock)
        gpt = ProviderSpec(options=ProviderOptions("gpt", "openai", f"{url}/v1", "k", "only-gpt"))
        specs = [echo("echo", "echo", "shared"), gpt, echo("hf", "Qwen/Qwen2.5-7B", "shared")]
        rig = Rig(manager, ModelRouter(clock=clock, ttl_s=60), clock, script, specs)
        await rig.use()
        try:
            yield rig
        finally:
            await manager.close()


async def test_the_rules_of_the_model_field(rig: Rig) -> None:
    resolve = rig.router.resolve
    assert await resolve(rig.manager, "gpt/some-model") == Route("gpt", "some-model")
    assert await resolve(rig.manager, "gpt/") == Route("gpt", None)
    assert await resolve(rig.manager, "only-gpt") == Route("gpt", "only-gpt")
    assert await resolve(rig.manager, "Qwen/Qwen2.5-7B") == Route("hf", "Qwen/Qwen2.5-7B")
    assert await resolve(rig.manager, "shared") == Route(None, "shared")  # two list it
    assert await resolve(rig.manager, "nobody-lists-it") == Route(None, "nobody-lists-it")
    with pytest.raises(ProviderNotFound, match="did you mean 'gpt'"):
        await resolve(rig.manager, "gtp/only-gpt")
    assert await rig.router.owners(rig.manager, "shared") == ("echo", "hf")


async def test_the_index_follows_listings_and_provider_changes(rig: Rig) -> None:
    assert await rig.router.resolve(rig.manager, "new-model") == Route(None, "new-model")
    rig.script.models.append("new-model")
    assert await rig.router.resolve(rig.manager, "new-model") == Route(None, "new-model")
    rig.clock.now += 301  # past the manager's listing cache and the router's index
    assert await rig.router.resolve(rig.manager, "new-model") == Route("gpt", "new-model")
    listings = len([r for r in rig.script.requests if r.path == "/v1/models"])
    assert listings == 2
    await rig.use(echo("extra", "new-model"))  # a provider added: rebuilt at once
    assert await rig.router.resolve(rig.manager, "new-model") == Route(None, "new-model")


async def test_a_provider_whose_listing_fails_lists_nothing(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    down = ProviderSpec(
        options=ProviderOptions("down", "openai_compatible", f"{closed_port_url()}/v1")
    )
    await rig.use(down)
    with caplog.at_level(logging.WARNING, logger="switchboard.api"):
        assert await rig.router.resolve(rig.manager, "only-gpt") == Route("gpt", "only-gpt")
    assert "event=model_listing_failed provider=down" in caplog.text
    assert await rig.router.resolve(rig.manager, "down/any") == Route("down", "any")
