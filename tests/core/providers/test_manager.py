"""ProviderManager rules: routing, retries, fallback, streams, circuit breaker, caches.

Every provider here is a real provider module talking HTTP to a loopback fake; the two
upstreams are different APIs (Anthropic first, Ollama as the fallback), so a fallback is
a real cross-API one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass

import httpx
import pytest

from core.errors import (
    CircuitOpen,
    ProviderBadRequest,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderServerError,
)
from core.providers.base import ProviderOptions
from core.providers.manager import ProviderManager, ProviderSpec, RoutingPolicy
from core.types import ChatMessage, ChatRequest, Role, StreamDone, StreamFailed, TextDelta
from tests.core.providers.cases import ProviderCase, discover
from tests.fakes.llm_script import CutStream, Fail, Reply, Script
from tests.fakes.server import closed_port_url, serve_app

CASES = {case.type_name: case for case in discover()}


def ask(text: str, model: str | None = None) -> ChatRequest:
    return ChatRequest(messages=(ChatMessage(role=Role.USER, content=text),), model=model)


@dataclass
class Upstream:
    case: ProviderCase
    script: Script
    base_url: str

    def spec(self, name: str, **overrides: object) -> ProviderSpec:
        options = self.case.options(self.base_url, name=name)
        spec_args: dict[str, object] = {"options": options, "max_retries": 2, "timeout_s": 5.0}
        spec_args.update(overrides)
        return ProviderSpec(**spec_args)  # type: ignore[arg-type]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    manager: ProviderManager
    primary: Upstream
    backup: Upstream
    sleeps: list[float]
    clock: FakeClock

    async def use(
        self,
        *,
        fallbacks: tuple[str, ...] = ("backup",),
        primary: dict[str, object] | None = None,
        policy: dict[str, object] | None = None,
    ) -> None:
        specs = [self.primary.spec("primary", **(primary or {})), self.backup.spec("backup")]
        await self.manager.apply(
            specs,
            policy=RoutingPolicy(fallbacks=fallbacks, **(policy or {})),
            default="primary",  # type: ignore[arg-type]
        )


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    sleeps: list[float] = []

    async def record_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    clock = FakeClock()
    async with AsyncExitStack() as stack:
        upstreams = []
        for type_name in ("anthropic", "ollama"):
            case = CASES[type_name]
            script = Script()
            url = await stack.enter_async_context(serve_app(case.make_app(script)))
            upstreams.append(Upstream(case, script, url))
        manager = ProviderManager(clock=clock, sleep=record_sleep, rng=lambda: 0.5)
        stack.push_async_callback(manager.close)
        rig = Rig(manager, upstreams[0], upstreams[1], sleeps, clock)
        await rig.use()
        yield rig


async def test_the_default_answers_and_says_who_answered(rig: Rig) -> None:
    result = await rig.manager.chat(ask("hello"))
    assert (result.provider, result.model) == ("primary", "fake-small")
    assert result.content == "fake[fake-small]: hello"
    assert rig.backup.script.requests == []


async def test_provider_and_model_overrides(rig: Rig) -> None:
    by_name = await rig.manager.chat(ask("hi"), provider="backup")
    assert by_name.provider == "backup"
    by_model = await rig.manager.chat(ask("hi", model="backup/fake-large"))
    assert (by_model.provider, by_model.model) == ("backup", "fake-large")
    plain = await rig.manager.chat(ask("hi", model="fake-large"))
    assert (plain.provider, plain.model) == ("primary", "fake-large")


async def test_an_unknown_provider_is_named_with_a_suggestion(rig: Rig) -> None:
    with pytest.raises(
        ProviderNotFound, match=r"no provider named 'primry' \(did you mean 'primary'\?\)"
    ):
        await rig.manager.chat(ask("hi"), provider="primry")


async def test_a_rate_limit_is_retried_after_retry_after(rig: Rig) -> None:
    rig.primary.script.push(Fail(429, "slow down", retry_after=3))
    result = await rig.manager.chat(ask("hi"))
    assert result.provider == "primary"
    assert rig.sleeps == [3.0]
    assert len(rig.primary.script.chat_requests) == 2


async def test_overload_is_retried_with_backoff_and_jitter(rig: Rig) -> None:
    rig.primary.script.push(
        Fail(529, "busy", kind="overloaded"), Fail(529, "busy", kind="overloaded")
    )
    result = await rig.manager.chat(ask("hi"))
    assert result.provider == "primary"
    # backoff 0.5 s then 1 s, each scaled by jitter 0.75 (rng = 0.5)
    assert rig.sleeps == [pytest.approx(0.375), pytest.approx(0.75)]


async def test_exhausted_retries_fall_back(rig: Rig) -> None:
    rig.primary.script.push(*[Fail(429, "slow down", retry_after=0.1)] * 3)
    result = await rig.manager.chat(ask("hi"))
    assert result.provider == "backup"
    assert len(rig.primary.script.chat_requests) == 3  # max_retries = 2
    assert len(rig.sleeps) == 2


async def test_a_retry_after_beyond_the_deadline_is_not_waited_for(rig: Rig) -> None:
    rig.primary.script.push(Fail(429, "come back in an hour", retry_after=3600))
    result = await rig.manager.chat(ask("hi"))
    assert result.provider == "backup"
    assert rig.sleeps == []


@pytest.mark.parametrize(
    "step",
    [Fail(500, "boom"), Fail(401, "bad key"), Reply(text="late", delay_s=2.0)],
    ids=["server-error", "auth", "timeout"],
)
async def test_unavailability_falls_back_with_the_fallbacks_own_model(
    rig: Rig, step: Fail | Reply
) -> None:
    await rig.use(primary={"timeout_s": 0.5})
    rig.primary.script.push(step)
    result = await rig.manager.chat(ask("hi", model="fake-large"))
    assert (result.provider, result.model) == ("backup", "fake-small")


async def test_an_unreachable_provider_falls_back(rig: Rig) -> None:
    dead = ProviderSpec(
        options=ProviderOptions("primary", "anthropic", closed_port_url(), "k", "fake-small")
    )
    await rig.manager.apply(
        [dead, rig.backup.spec("backup")],
        policy=RoutingPolicy(fallbacks=("backup",)),
        default="primary",
    )
    assert (await rig.manager.chat(ask("hi"))).provider == "backup"


async def test_a_bad_request_never_falls_back(rig: Rig) -> None:
    rig.primary.script.push(Fail(400, "bad field"))
    with pytest.raises(ProviderBadRequest):
        await rig.manager.chat(ask("hi"))
    assert rig.backup.script.requests == []


async def test_a_named_provider_gets_no_fallback(rig: Rig) -> None:
    rig.primary.script.push(Fail(500, "boom"))
    with pytest.raises(ProviderServerError):
        await rig.manager.chat(ask("hi"), provider="primary")
    assert rig.backup.script.requests == []


async def test_without_fallbacks_the_error_reaches_the_caller(rig: Rig) -> None:
    await rig.use(fallbacks=())
    rig.primary.script.push(*[Fail(429, "slow down", retry_after=0.1)] * 3)
    with pytest.raises(ProviderRateLimited):
        await rig.manager.chat(ask("hi"))


async def test_a_stream_falls_back_before_its_first_event(rig: Rig) -> None:
    rig.primary.script.push(Fail(503, "down"))
    events = [e async for e in rig.manager.stream(ask("stream it"))]
    assert isinstance(events[-1], StreamDone) and events[-1].provider == "backup"
    assert (
        "".join(e.text for e in events if isinstance(e, TextDelta)) == "fake[fake-small]: stream it"
    )


async def test_a_stream_broken_after_text_ends_with_an_error_event(rig: Rig) -> None:
    rig.primary.script.push(CutStream(Reply(text="one two three four"), after_chunks=1))
    events = [e async for e in rig.manager.stream(ask("stream it"))]
    assert any(isinstance(e, TextDelta) for e in events)
    last = events[-1]
    assert isinstance(last, StreamFailed) and last.provider == "primary"
    assert last.code == "provider_stream_broken"
    assert not any(isinstance(e, StreamDone) for e in events)
    assert rig.backup.script.requests == []


async def test_a_stream_rate_limit_is_retried_before_the_first_event(rig: Rig) -> None:
    rig.primary.script.push(Fail(429, "slow down", retry_after=1))
    events = [e async for e in rig.manager.stream(ask("hi"))]
    assert isinstance(events[-1], StreamDone) and events[-1].provider == "primary"
    assert rig.sleeps == [1.0]


async def test_the_circuit_opens_skips_and_probes_again(rig: Rig) -> None:
    await rig.use(policy={"circuit_failures": 2, "circuit_cooldown_s": 30.0})
    rig.primary.script.push(Fail(500, "boom"), Fail(500, "boom"))
    for _ in range(2):
        assert (await rig.manager.chat(ask("hi"))).provider == "backup"
    assert rig.manager.circuit_state("primary") == "open"
    asked = len(rig.primary.script.chat_requests)
    assert (await rig.manager.chat(ask("hi"))).provider == "backup"
    assert len(rig.primary.script.chat_requests) == asked  # skipped, not asked
    with pytest.raises(CircuitOpen):
        await rig.manager.chat(ask("hi"), provider="primary")

    rig.clock.now += 31
    assert rig.manager.circuit_state("primary") == "half_open"
    assert (await rig.manager.chat(ask("hi"))).provider == "primary"  # the probe succeeds
    assert rig.manager.circuit_state("primary") == "closed"


async def test_a_failed_probe_opens_the_circuit_again(rig: Rig) -> None:
    await rig.use(policy={"circuit_failures": 1, "circuit_cooldown_s": 10.0})
    rig.primary.script.push(Fail(500, "boom"), Fail(500, "still down"))
    await rig.manager.chat(ask("hi"))
    rig.clock.now += 11
    assert (await rig.manager.chat(ask("hi"))).provider == "backup"
    assert rig.manager.circuit_state("primary") == "open"


async def test_bad_requests_do_not_open_the_circuit(rig: Rig) -> None:
    await rig.use(policy={"circuit_failures": 1})
    rig.primary.script.push(Fail(400, "bad"))
    with pytest.raises(ProviderBadRequest):
        await rig.manager.chat(ask("hi"))
    assert rig.manager.circuit_state("primary") == "closed"


async def test_health_is_cached_and_never_a_chat(rig: Rig) -> None:
    first = await rig.manager.health()
    assert first["primary"].healthy and first["backup"].healthy
    assert first["primary"].latency_ms is not None
    probes = len(rig.primary.script.requests)
    await rig.manager.health("primary")
    assert len(rig.primary.script.requests) == probes  # cached
    rig.clock.now += 11
    await rig.manager.health("primary")
    assert len(rig.primary.script.requests) == probes + 1
    assert rig.primary.script.chat_requests == []


async def test_model_listings_are_cached(rig: Rig) -> None:
    assert await rig.manager.list_models("primary") == ["fake-small", "fake-large"]
    asked = len(rig.primary.script.requests)
    await rig.manager.list_models("primary")
    assert len(rig.primary.script.requests) == asked
    everything = await rig.manager.all_models()
    assert everything["backup"] == ["fake-small", "fake-large"]


async def test_the_concurrency_limit_queues_requests(rig: Rig) -> None:
    await rig.use(primary={"max_concurrency": 1})
    rig.primary.script.push(Reply(text="a", delay_s=0.3), Reply(text="b", delay_s=0.3))
    loop = asyncio.get_running_loop()
    start = loop.time()
    results = await asyncio.gather(rig.manager.chat(ask("1")), rig.manager.chat(ask("2")))
    assert sorted(r.content for r in results) == ["a", "b"]
    assert loop.time() - start >= 0.6


async def test_apply_keeps_unchanged_providers_and_their_state(rig: Rig) -> None:
    await rig.use(policy={"circuit_failures": 1})
    rig.primary.script.push(Fail(500, "boom"))
    await rig.manager.chat(ask("hi"))
    assert rig.manager.circuit_state("primary") == "open"
    await rig.use(policy={"circuit_failures": 1})  # same config again: state survives
    assert rig.manager.circuit_state("primary") == "open"
    await rig.use(primary={"max_retries": 0}, policy={"circuit_failures": 1})
    assert rig.manager.circuit_state("primary") == "closed"  # changed provider, fresh state


async def test_one_http_client_per_host(rig: Rig) -> None:
    same_host = rig.primary.spec("twin")
    await rig.manager.apply(
        [rig.primary.spec("primary"), same_host, rig.backup.spec("backup")],
        policy=RoutingPolicy(),
        default="primary",
    )
    clients = rig.manager._clients._clients  # noqa: SLF001 - the pooling is the point here
    assert len(clients) == 2
    assert all(isinstance(c, httpx.AsyncClient) for c in clients.values())
