"""Hot reload: an edit of the config file is picked up within ``reload_interval_s``.

The file's stat is polled instead of using inotify: it costs one ``stat`` a second, works
on every filesystem (bind mounts, network shares, editors that replace the file) and needs
no extra dependency.

Replicas (several ``switchboard run`` on one database): each one watches its own copy of
the file. Replicas on one machine share the file and so apply each edit within
``reload_interval_s`` of each other; replicas on several machines need the same file
deployed to each (config management), or they run different configs. Each replica applies
and audits an edit itself: one ``config.applied`` (or ``config.rejected``) record per
replica, with that replica's generation. Providers registered and defaults set through
the admin API live in the database instead; the same loop follows them
(``ProviderDirectory.follow_changes``), so every replica applies them within
``reload_interval_s`` as well.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path

from core.errors import ConfigErrors, StorageError, SwitchboardError
from gateway.config_loader import LoadedConfig, parse_config, read_config_text
from gateway.runtime import Runtime
from gateway.secrets import resolve_secrets

log = logging.getLogger("switchboard.config")

# Keys read once at start-up: a change is reported, and applies after a restart.
RESTART_KEYS = (
    "gateway.host",
    "gateway.port",
    "storage.url",
    "storage.pool_size",
    "security.vault_key",
)


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size, info.st_ino)


class ConfigWatcher:
    """Polls the config file and applies valid edits; invalid ones keep the last good config."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._path = runtime.config.path
        self._signature = _signature(self._path)
        self._follow_problem: str | None = None

    async def run(self) -> None:
        """Poll forever (cancel to stop)."""
        while True:
            await asyncio.sleep(self._runtime.config.config.gateway.reload_interval_s)
            await self.check_once()
            await self.follow_providers()

    async def follow_providers(self) -> bool:
        """Apply provider changes other replicas stored; True when some were applied.

        A failure (the database away, say) is logged once and retried on the next poll;
        it must not stop the file from being watched.
        """
        try:
            changed = await self._runtime.providers.follow_changes()
        except SwitchboardError as exc:
            if exc.message != self._follow_problem:
                log.error("event=providers_follow_failed problem=%r", exc.message)
            self._follow_problem = exc.message
            return False
        if self._follow_problem is not None:
            log.info("event=providers_follow_recovered")
            self._follow_problem = None
        return changed

    async def check_once(self, *, force: bool = False) -> bool:
        """Look at the file once; True when a new config was applied.

        ``force`` reads the file even when its stat did not change.
        """
        signature = _signature(self._path)
        if signature == self._signature and not force:
            return False
        self._signature = signature
        holder = self._runtime.holder
        try:
            new = await self._load()
        except SwitchboardError as exc:
            lines = [e.message for e in exc.errors] if isinstance(exc, ConfigErrors) else [str(exc)]
            holder.reject(lines)
            for line in lines:
                log.error("event=config_rejected path=%s problem=%r", self._path, line)
            log.error("event=config_kept generation=%d", holder.generation)
            await self._audit_rejected(lines)
            return False
        if new is None:  # same content as the config in force (touched, or edited back)
            holder.errors = ()
            return False
        _warn_restart_only(holder.current, new)
        await holder.apply(new)
        log.info("event=config_applied path=%s generation=%d", self._path, holder.generation)
        return True

    async def _audit_rejected(self, problems: list[str]) -> None:
        try:
            await self._runtime.audit.append(
                "config.rejected",
                actor="gateway:reload",
                data={
                    "path": str(self._path),
                    "problems": problems[:20],
                    "kept_generation": self._runtime.holder.generation,
                },
            )
        except StorageError as exc:
            log.error("event=audit_failed kind=config.rejected problem=%r", exc.message)

    async def _load(self) -> LoadedConfig | None:
        """The edited config, fully validated with its secrets resolved; None if unchanged."""
        text = read_config_text(self._path)
        if hashlib.sha256(text.encode("utf-8")).hexdigest() == self._runtime.config.digest:
            return None
        new = parse_config(text, path=self._path)
        await resolve_secrets(
            new.config,
            base_dir=new.base_dir,
            vault=self._runtime.vault,
            redactor=self._runtime.redactor,
        )
        return new


def _warn_restart_only(old: LoadedConfig, new: LoadedConfig) -> None:
    before = old.config.model_dump(mode="json")
    after = new.config.model_dump(mode="json")
    for key in RESTART_KEYS:
        section, name = key.split(".")
        if before[section][name] != after[section][name]:
            log.warning("event=config_needs_restart key=%s", key)
