"""The gateway's long-lived resources: config holder, database, vault, audit log."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from core.approvals import ApprovalService
from core.config import secret_refs
from core.errors import ConfigError, ConfigErrors, SecretError, StorageError
from core.orchestrator import Orchestrator
from core.providers.manager import ProviderManager
from core.security.audit import AuditLog
from core.security.vault import Vault
from core.storage import Database, ProviderRepository, VaultRepository
from core.storage.audit_repo import AuditRepository
from core.storage.replica_repo import ReplicaRepository
from core.storage.shared_locks import AdvisoryLocks, LocalLocks, SharedLocks
from gateway.assistant import Assistant
from gateway.config_loader import LoadedConfig
from gateway.provider_directory import ProviderDirectory
from gateway.provider_metrics import ProviderMetrics
from gateway.redaction import SecretRedactor
from gateway.replicas import Replica
from gateway.schema import check_schema, upgrade_to_head
from gateway.secrets import database_url, read_local_secret, resolve_secrets

if TYPE_CHECKING:
    from gateway.channel_host import GatewayChannelHost

log = logging.getLogger("switchboard.runtime")

ConfigListener = Callable[[LoadedConfig, LoadedConfig], Awaitable[None]]


@dataclass
class ConfigHolder:
    """The config in force, and what went wrong with the last edit if it was rejected."""

    current: LoadedConfig
    errors: tuple[str, ...] = ()
    applied_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    rejected_at: datetime | None = None
    generation: int = 1
    _listeners: list[ConfigListener] = field(default_factory=list)

    def subscribe(self, listener: ConfigListener) -> None:
        """Call ``listener(old, new)`` after each applied edit."""
        self._listeners.append(listener)

    async def apply(self, new: LoadedConfig) -> None:
        """Make ``new`` the config in force and tell every listener."""
        old, self.current = self.current, new
        self.errors = ()
        self.generation += 1
        self.applied_at = datetime.now(UTC)
        for listener in self._listeners:
            await listener(old, new)

    def reject(self, errors: list[str]) -> None:
        """Record a bad edit; the config in force stays."""
        self.errors = tuple(errors)
        self.rejected_at = datetime.now(UTC)


class Runtime:
    """Everything ``build_app`` needs that lives as long as the process."""

    def __init__(
        self,
        *,
        holder: ConfigHolder,
        db: Database,
        vault: Vault | None,
        redactor: SecretRedactor,
        providers: ProviderDirectory,
        audit: AuditLog,
        provider_metrics: ProviderMetrics | None = None,
        replica: Replica,
        shared_locks: SharedLocks,
    ) -> None:
        self.holder = holder
        self.db = db
        self.vault = vault
        self.redactor = redactor
        self.providers = providers
        self.audit = audit
        # This process among the replicas on the database, and the locks they share.
        self.replica = replica
        self.shared_locks = shared_locks
        # What the provider manager reports (it was built with this as its observer).
        self.provider_metrics = provider_metrics or ProviderMetrics()
        self.assistant = Assistant(
            config=lambda: self.holder.current.config,
            db=db,
            manager=lambda: self.providers.manager,
            audit=audit,
            replica_id=replica.id,
            shared_locks=shared_locks,
        )
        # Set by the app's lifespan when it starts the configured chat platforms.
        self.channels: GatewayChannelHost | None = None
        holder.subscribe(providers.on_config_change)
        holder.subscribe(self.assistant.on_config_change)
        holder.subscribe(self._audit_config_applied)

    async def _audit_config_applied(self, _: LoadedConfig, new: LoadedConfig) -> None:
        """Record each applied config edit: which file, which content (its digest)."""
        try:
            await self.audit.append(
                "config.applied",
                actor="gateway:reload",
                data={
                    "generation": self.holder.generation,
                    "path": str(new.path),
                    "digest": new.digest,
                    "vault_reads": vault_names(new),
                },
            )
        except StorageError as exc:
            # The new config is already in force and failing here would not undo it;
            # say loudly that this change has no audit record.
            log.error(
                "event=audit_failed kind=config.applied generation=%d problem=%r",
                self.holder.generation,
                exc.message,
            )

    def channel_status(self) -> dict[str, dict[str, Any]]:
        """Each running chat platform's state (none when no channel runs here)."""
        return self.channels.status() if self.channels is not None else {}

    @property
    def orchestrator(self) -> Orchestrator:
        """The orchestrator every front door hands messages to."""
        return self.assistant.orchestrator

    @property
    def approvals(self) -> ApprovalService:
        """Actions and their approvals."""
        return self.assistant.approvals

    @property
    def manager(self) -> ProviderManager:
        """The provider manager in force."""
        return self.providers.manager

    @property
    def config(self) -> LoadedConfig:
        """The config in force."""
        return self.holder.current

    @classmethod
    async def open(
        cls,
        loaded: LoadedConfig,
        *,
        redactor: SecretRedactor,
        migrate: bool = False,
        role: str = "gateway",
    ) -> Runtime:
        """Connect the database (migrating if asked), open the vault, resolve every secret,
        and register this process as a replica (``role``: "gateway" or "cli").

        Raises ``SchemaOutOfDate``, ``StorageError``, ``VaultKeyMismatch`` or ``ConfigErrors``.
        """
        db = await connect_database(loaded, redactor=redactor, migrate=migrate)
        provider_metrics = ProviderMetrics()
        manager = ProviderManager(observer=provider_metrics)
        try:
            vault = await open_vault(loaded, db=db, redactor=redactor)
            await resolve_secrets(
                loaded.config, base_dir=loaded.base_dir, vault=vault, redactor=redactor
            )
            providers = ProviderDirectory(
                manager=manager,
                repo=ProviderRepository(db),
                vault=vault,
                redactor=redactor,
            )
            await providers.load(loaded)
        except BaseException:
            await manager.close()
            await db.close()
            raise
        audit = AuditLog(AuditRepository(db), redact=redactor.redact)
        names = vault_names(loaded)
        if names:
            await audit.append("vault.read", actor="gateway:startup", data={"names": names})
        replica = Replica(ReplicaRepository(db), role=role)
        await replica.start()
        shared_locks: SharedLocks = LocalLocks() if db.is_sqlite else AdvisoryLocks(db.engine)
        return cls(
            holder=ConfigHolder(current=loaded),
            db=db,
            vault=vault,
            redactor=redactor,
            providers=providers,
            audit=audit,
            provider_metrics=provider_metrics,
            replica=replica,
            shared_locks=shared_locks,
        )

    async def close(self) -> None:
        """Unregister, release shared locks, close the providers' and tools' connections and
        the database."""
        await self.shared_locks.close()
        await self.replica.stop()
        await self.assistant.close()
        await self.providers.manager.close()
        await self.db.close()


def vault_names(loaded: LoadedConfig) -> list[str]:
    """The vault entries the config's ``vault:`` references read (names only)."""
    return sorted({ref.target for _, ref in secret_refs(loaded.config) if ref.scheme == "vault"})


async def connect_database(
    loaded: LoadedConfig, *, redactor: SecretRedactor, migrate: bool = False
) -> Database:
    """The configured database, reachable and at the newest schema (migrated if asked).

    Raises ``StorageError``, ``SchemaOutOfDate`` or ``ConfigErrors`` (bad password reference).
    """
    url = database_url(loaded, redactor=redactor)
    storage = loaded.config.storage
    db = Database.open(url, pool_size=storage.pool_size, echo=storage.echo_sql)
    try:
        await db.ping()
        if migrate:
            before, after = await upgrade_to_head(url)
            if before != after:
                log.info("event=migrated from=%s to=%s", before or "empty", after)
        await check_schema(db)
    except BaseException:
        await db.close()
        raise
    return db


async def open_vault(
    loaded: LoadedConfig, *, db: Database, redactor: SecretRedactor
) -> Vault | None:
    """The vault under ``[security] vault_key``, or None when no key is configured."""
    ref = loaded.config.security.vault_key
    if ref is None:
        return None
    try:
        passphrase = read_local_secret(ref, key_path="security.vault_key", base_dir=loaded.base_dir)
    except SecretError as exc:
        raise ConfigErrors([ConfigError(exc.key_path, exc.problem)]) from None
    redactor.add(passphrase)
    ref.attach(passphrase)
    return await Vault.open(VaultRepository(db), passphrase)
