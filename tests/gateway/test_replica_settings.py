"""Replicas on one database follow each other's provider changes and the shared config file.

Two apps built from the same workspace play two ``switchboard run`` processes: each has its
own Runtime (engine, vault, provider manager, config watcher) over one database, on SQLite
(one file) and on PostgreSQL (one database per test). Nothing tells a replica about a
change but what it reads from the database or the file itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.errors import Conflict
from core.storage import Database, ProviderRepository, RegisteredProvider
from gateway.schema import upgrade_to_head
from tests.fakes import openai_api
from tests.fakes.llm_script import Script
from tests.fakes.server import serve_app
from tests.gateway.conftest import app_client

KEY = "sk-replica-test-0123456789abcdef"
# DESIGN.md: config edits are applied within 5 s; run-time provider changes keep the same bound.
WITHIN_S = 5.0
HI = {"messages": [{"role": "user", "content": "hi"}]}


@dataclass
class Replicas:
    a: httpx.AsyncClient
    b: httpx.AsyncClient
    openai: Script
    openai_url: str
    config: Path


@pytest.fixture
async def replicas(workspace: Path, db_url: str) -> AsyncIterator[Replicas]:
    """Two gateways on the database ``db_url`` and one config file, and an OpenAI fake."""
    text = workspace.read_text()
    sqlite_default = 'url = "sqlite+aiosqlite:///./data/switchboard.db"'
    assert sqlite_default in text
    workspace.write_text(text.replace(sqlite_default, f'url = "{db_url}"'))
    await upgrade_to_head(db_url)
    script = Script(api_key=KEY)
    async with (
        serve_app(openai_api.make_app(script)) as url,
        app_client(workspace) as a,
        app_client(workspace) as b,
    ):
        yield Replicas(a=a, b=b, openai=script, openai_url=f"{url}/v1", config=workspace)


async def within(
    what: str, probe: Callable[[], Awaitable[Any]], check: Callable[[Any], bool]
) -> float:
    """Seconds until ``check(await probe())`` holds; fails after ``WITHIN_S``."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        seen = await probe()
        if check(seen):
            return loop.time() - started
        if loop.time() - started > WITHIN_S:
            raise AssertionError(f"{what}: not within {WITHIN_S} s, last seen {seen!r}")
        await asyncio.sleep(0.05)


def provider_names(client: httpx.AsyncClient) -> Callable[[], Awaitable[set[str]]]:
    async def probe() -> set[str]:
        return {view["name"] for view in (await client.get("/api/providers")).json()}

    return probe


async def register_shared(replicas: Replicas) -> None:
    """``shared`` (the OpenAI fake) registered through A, and known to B."""
    response = await replicas.a.post(
        "/api/providers/register",
        json={
            "name": "shared",
            "type": "openai",
            "base_url": replicas.openai_url,
            "api_key": KEY,
            "default_model": "fake-small",
        },
    )
    assert response.status_code == 201, response.text
    await within("B lists shared", provider_names(replicas.b), lambda names: "shared" in names)


async def test_a_provider_registered_on_one_replica_serves_on_the_other(
    replicas: Replicas,
) -> None:
    assert "shared" not in await provider_names(replicas.b)()
    await register_shared(replicas)
    answer = await replicas.b.post("/api/chat/multi", json={**HI, "provider": "shared"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["provider"], body["content"]) == ("shared", "fake[fake-small]: hi")
    # B read the key from the shared vault: the fake answers only to the right one.
    assert len(replicas.openai.chat_requests) == 1
    views = {v["name"]: v for v in (await replicas.b.get("/api/providers")).json()}
    assert views["shared"]["source"] == "registered"
    assert KEY not in str(views)


async def test_a_default_set_on_one_replica_is_used_by_the_other(replicas: Replicas) -> None:
    await register_shared(replicas)
    assert (await replicas.a.post("/api/chat/multi", json=HI)).json()["provider"] == "echo"
    chosen = await replicas.b.post("/api/providers/shared/default")
    assert chosen.json() == {"default": "shared"}

    async def a_default_answer() -> str:
        return str((await replicas.a.post("/api/chat/multi", json=HI)).json()["provider"])

    await within("A answers through shared", a_default_answer, lambda name: name == "shared")
    views = {v["name"]: v for v in (await replicas.a.get("/api/providers")).json()}
    assert views["shared"]["is_default"] is True and views["echo"]["is_default"] is False
    # And back, the other way round.
    await replicas.a.post("/api/providers/echo/default")

    async def b_default() -> str:
        return str((await replicas.b.post("/api/chat/multi", json=HI)).json()["provider"])

    await within("B answers through echo again", b_default, lambda name: name == "echo")


async def test_a_name_just_registered_elsewhere_is_refused_and_keeps_its_key(
    replicas: Replicas,
) -> None:
    first = await replicas.a.post(
        "/api/providers/register",
        json={"name": "shared", "type": "openai", "base_url": replicas.openai_url, "api_key": KEY},
    )
    assert first.status_code == 201
    # At once, before B's watcher polled: B must not overwrite the vault entry of A's provider.
    second = await replicas.b.post(
        "/api/providers/register",
        json={
            "name": "shared",
            "type": "openai",
            "base_url": replicas.openai_url,
            "api_key": "sk-someone-elses-key-000000",
        },
    )
    assert second.status_code == 409, second.text
    for replica in (replicas.a, replicas.b):
        answer = await replica.post(
            "/api/chat/multi", json={**HI, "provider": "shared", "model": "fake-small"}
        )
        assert answer.status_code == 200, answer.text


async def test_a_config_edit_applies_and_is_audited_on_every_replica(replicas: Replicas) -> None:
    text = replicas.config.read_text()
    replicas.config.write_text(text + '\n[providers.extra]\ntype = "echo"\n')

    for name, replica in (("A", replicas.a), ("B", replicas.b)):
        await within(f"{name} lists extra", provider_names(replica), lambda n: "extra" in n)
        config = (await replica.get("/api/config")).json()
        assert config["generation"] == 2 and "extra" in config["config"]["providers"]

    async def applied_records() -> list[dict[str, Any]]:
        params = {"kind": "config.applied"}
        records: list[dict[str, Any]] = (await replicas.a.get("/api/audit", params=params)).json()[
            "records"
        ]
        return records

    await within("two config.applied records", applied_records, lambda r: len(r) == 2)
    records = await applied_records()
    assert {r["data"]["generation"] for r in records} == {2}
    assert len({r["data"]["digest"] for r in records}) == 1
    verified = (await replicas.b.get("/api/audit/verify")).json()
    assert verified["ok"] is True, verified


def _provider(name: str) -> RegisteredProvider:
    return RegisteredProvider(
        name=name,
        type="echo",
        base_url="",
        default_model=None,
        api_key_secret=None,
        created_at=datetime.now(UTC),
    )


async def test_every_stored_change_bumps_the_generation_once(migrated_db: Database) -> None:
    repo = ProviderRepository(migrated_db)
    assert await repo.generation() == 0
    assert await repo.add(_provider("one")) == 1
    with pytest.raises(Conflict):
        await repo.add(_provider("one"))
    assert await repo.generation() == 1  # the refused insert changed nothing
    assert await repo.set_setting("default_provider", '{"name": "one"}') == 2
    assert await repo.remove("one") is True
    assert await repo.remove("one") is False
    assert await repo.generation() == 3


async def test_concurrent_changes_each_get_their_own_generation(migrated_db: Database) -> None:
    repo = ProviderRepository(migrated_db)
    results = await asyncio.gather(
        *(repo.set_setting(f"setting.{i}", str(i)) for i in range(8)),
        *(repo.add(_provider(f"p{i}")) for i in range(8)),
    )
    assert sorted(results) == list(range(1, 17))
    assert await repo.generation() == 16
