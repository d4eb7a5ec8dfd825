"""The gateway's providers: those of the config file plus those registered through the API.

Registered providers are stored in the database, their API keys in the vault (entry
``provider.<name>.api_key``). A default set through the API is stored too; it holds until
the config file names another default (the operator's newer intent wins).

Replicas (several ``switchboard run`` on one database) follow each other's changes: every
write bumps a generation counter in the same transaction (``ProviderRepository``), and
``follow_changes`` (called by the config watcher every ``reload_interval_s``) reloads the
directory when the stored generation is not the one last loaded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from core.config import DEFAULT_BASE_URLS, KEYED_PROVIDER_TYPES, GatewayConfig, ProviderSection
from core.errors import (
    Conflict,
    ProviderBadRequest,
    SecretNotFound,
    VaultError,
    VaultNotConfigured,
)
from core.providers.base import ProviderOptions
from core.providers.manager import ProviderManager, ProviderSpec, RoutingPolicy
from core.providers.registry import known_types
from core.security.vault import Vault
from core.storage import ProviderRepository, RegisteredProvider
from core.suggest import did_you_mean
from gateway.config_loader import LoadedConfig
from gateway.redaction import SecretRedactor

log = logging.getLogger("switchboard.providers")

DEFAULT_SETTING = "default_provider"
IMPLICIT_ECHO = "echo"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def vault_entry_for(name: str) -> str:
    """The vault entry holding a registered provider's API key."""
    return f"provider.{name}.api_key"


def _timeout(section: ProviderSection) -> httpx.Timeout:
    return httpx.Timeout(
        connect=section.connect_timeout_s,
        read=section.read_timeout_s,
        write=section.read_timeout_s,
        pool=section.timeout_s,
    )


def spec_from_config(name: str, section: ProviderSection) -> ProviderSpec:
    """A configured provider (its secret references already resolved)."""
    return ProviderSpec(
        options=ProviderOptions(
            name=name,
            type_name=section.type,
            base_url=section.effective_base_url or "",
            api_key=section.api_key.reveal() if section.api_key else None,
            default_model=section.default_model,
            timeout=_timeout(section),
            headers=dict(section.headers),
            models=section.models,
        ),
        max_retries=section.max_retries,
        timeout_s=section.timeout_s,
        max_concurrency=section.max_concurrency,
    )


def policy_from_config(config: GatewayConfig) -> RoutingPolicy:
    """``[routing]`` as the manager takes it."""
    routing = config.routing
    return RoutingPolicy(
        fallbacks=routing.fallbacks,
        circuit_failures=routing.circuit_failures,
        circuit_cooldown_s=routing.circuit_cooldown_s,
        retry_backoff_s=routing.retry_backoff_s,
        health_cache_s=routing.health_cache_s,
        models_cache_s=routing.models_cache_s,
    )


@dataclass(frozen=True)
class Registration:
    """What ``POST /api/providers/register`` asks for."""

    name: str
    type: str
    base_url: str | None = None
    api_key: str | None = None
    default_model: str | None = None


class ProviderDirectory:
    """Keeps the ProviderManager in step with the config file and the registrations."""

    def __init__(
        self,
        *,
        manager: ProviderManager,
        repo: ProviderRepository,
        vault: Vault | None,
        redactor: SecretRedactor,
    ) -> None:
        self.manager = manager
        self._repo = repo
        self._vault = vault
        self._redactor = redactor
        self._loaded: LoadedConfig | None = None
        self._sources: dict[str, str] = {}
        # The stored generation the manager reflects; -1 until the first load.
        self._generation = -1
        # One load (or default change) at a time: a slower load must not apply older
        # rows over a newer one, nor undo a default just set.
        self._changing = asyncio.Lock()

    def source(self, name: str) -> str:
        """``config``, ``registered`` or ``implicit`` (the echo provider of an empty config)."""
        return self._sources.get(name, "config")

    @property
    def generation(self) -> int:
        """The stored generation of registrations and settings the manager reflects."""
        return self._generation

    async def load(self, loaded: LoadedConfig) -> None:
        """Apply the config's providers plus the registered ones to the manager."""
        async with self._changing:
            await self._load(loaded)

    async def follow_changes(self) -> bool:
        """Reload when another replica changed registrations or the default; True if so.

        One primary-key read when nothing changed. Raises ``StorageError``.
        """
        if self._loaded is None:
            return False
        async with self._changing:
            if await self._repo.generation() == self._generation:
                return False
            await self._load(self._loaded)
        log.info("event=providers_followed generation=%d", self._generation)
        return True

    async def _load(self, loaded: LoadedConfig) -> None:
        config = loaded.config
        self._loaded = loaded
        # Read before the rows: a change landing in between is loaded now and again later,
        # never missed.
        generation = await self._repo.generation()
        specs = [spec_from_config(n, s) for n, s in config.providers.items()]
        sources = dict.fromkeys(config.providers, "config")
        for registered in await self._repo.list():
            if registered.name in sources:
                log.warning("event=registered_provider_shadowed name=%s", registered.name)
                continue
            try:
                specs.append(await self._spec_from_registration(registered))
            except SecretNotFound:
                # One lost key must not take every other provider down with it.
                log.error("event=registered_provider_key_missing name=%s", registered.name)
                continue
            sources[registered.name] = "registered"
        if not specs:
            specs.append(ProviderSpec(options=ProviderOptions(IMPLICIT_ECHO, "echo", "")))
            sources[IMPLICIT_ECHO] = "implicit"
        self._sources = sources
        await self.manager.apply(
            specs, policy=policy_from_config(config), default=await self._default(config)
        )
        self._generation = generation

    async def on_config_change(self, old: LoadedConfig, new: LoadedConfig) -> None:
        """Hot reload: the manager follows the edited file."""
        await self.load(new)

    async def _spec_from_registration(self, registered: RegisteredProvider) -> ProviderSpec:
        api_key = None
        if registered.api_key_secret:
            if self._vault is None:
                raise VaultError(
                    f"provider {registered.name!r} keeps its key in the vault, "
                    "but [security] vault_key is not set"
                )
            api_key = await self._vault.get(registered.api_key_secret)
            self._redactor.add(api_key)
        defaults = ProviderSection(type=registered.type)
        return ProviderSpec(
            options=ProviderOptions(
                name=registered.name,
                type_name=registered.type,
                base_url=registered.base_url,
                api_key=api_key,
                default_model=registered.default_model,
                timeout=_timeout(defaults),
            ),
            max_retries=defaults.max_retries,
            timeout_s=defaults.timeout_s,
            max_concurrency=defaults.max_concurrency,
            source="registered",
        )

    async def _default(self, config: GatewayConfig) -> str | None:
        configured = config.default_provider
        stored = await self._repo.get_setting(DEFAULT_SETTING)
        if stored:
            choice = json.loads(stored)
            # Still valid only while the file names the same default as when it was set.
            if choice.get("config_default") == configured:
                return str(choice["name"])
        return configured

    async def set_default(self, name: str) -> None:
        """Make ``name`` the default provider, persisted across restarts."""
        async with self._changing:
            self.manager.set_default(name)
            configured = self._loaded.config.default_provider if self._loaded else None
            generation = await self._repo.set_setting(
                DEFAULT_SETTING, json.dumps({"name": name, "config_default": configured})
            )
            if generation == self._generation + 1:
                # Nobody else wrote since the last load: the manager is already up to date.
                self._generation = generation
        log.info("event=default_provider_set name=%s", name)

    async def register(self, registration: Registration) -> None:
        """Add a provider at run time; its API key goes to the vault, never the database."""
        name, type_name = registration.name, registration.type
        # Another replica may have registered this name a moment ago: know it before the
        # vault entry (shared by name) is written.
        await self.follow_changes()
        if not _NAME.match(name):
            raise ProviderBadRequest(
                f"provider name {name!r} must be 1-64 of a-z, 0-9, '_' and '-'",
                provider=name,
            )
        if name in self.manager.names() and self.source(name) != "implicit":
            raise Conflict(f"a provider named {name!r} already exists")
        types = known_types()
        if type_name not in types:
            raise ProviderBadRequest(
                f"unknown provider type {type_name!r}{did_you_mean(type_name, types)}",
                provider=name,
            )
        base_url = (registration.base_url or DEFAULT_BASE_URLS.get(type_name, "")).rstrip("/")
        if type_name != "echo" and not base_url.startswith(("http://", "https://")):
            raise ProviderBadRequest("base_url must start with http:// or https://", provider=name)
        if type_name in KEYED_PROVIDER_TYPES and not registration.api_key:
            raise ProviderBadRequest(f"type {type_name!r} needs an api_key", provider=name)
        secret_name = None
        if registration.api_key:
            if self._vault is None:
                raise VaultNotConfigured(
                    "cannot store the api_key: [security] vault_key is not set; set it "
                    "(switchboard init writes one) and restart, or register without a key"
                )
            secret_name = vault_entry_for(name)
            self._redactor.add(registration.api_key)
            await self._vault.set(secret_name, registration.api_key)
        await self._repo.add(
            RegisteredProvider(
                name=name,
                type=type_name,
                base_url=base_url,
                default_model=registration.default_model,
                api_key_secret=secret_name,
                created_at=datetime.now(UTC),
            )
        )
        log.info("event=provider_registered name=%s type=%s", name, type_name)
        if self._loaded is not None:
            await self.load(self._loaded)
