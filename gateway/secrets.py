"""The one place that turns secret references into values.

``env:NAME`` reads an environment variable, ``file:PATH`` the first line of a file that
only its owner can read (relative to the config file), ``vault:NAME`` the encrypted vault.
Every failure names the config key that holds the reference.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sqlalchemy.engine import make_url

from core.config import GatewayConfig, SecretRef, secret_refs
from core.errors import ConfigError, ConfigErrors, SecretError, SecretNotFound, VaultError
from core.ports import SecretStore
from gateway.config_loader import LoadedConfig
from gateway.redaction import SecretRedactor


def read_local_secret(ref: SecretRef, *, key_path: str, base_dir: Path) -> str:
    """Resolve an ``env:`` or ``file:`` reference (no vault needed)."""
    if ref.scheme == "env":
        value = os.environ.get(ref.target)
        if value is None:
            raise SecretError(key_path, f"environment variable {ref.target} is not set")
        if not value.strip():
            raise SecretError(key_path, f"environment variable {ref.target} is empty")
        return value.strip()
    if ref.scheme == "file":
        return _read_secret_file(ref.target, key_path=key_path, base_dir=base_dir)
    raise SecretError(key_path, f"{ref} needs the vault")


def _read_secret_file(target: str, *, key_path: str, base_dir: Path) -> str:
    path = Path(target).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    try:
        info = path.stat()
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            mode = stat.S_IMODE(info.st_mode)
            raise SecretError(
                key_path,
                f"secret file {path} can be read by others (mode {mode:04o}): run chmod 600 {path}",
            )
        first_line = path.read_text(encoding="utf-8").partition("\n")[0].strip()
    except FileNotFoundError:
        raise SecretError(key_path, f"secret file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretError(key_path, f"cannot read secret file {path}: {exc}") from None
    if not first_line:
        raise SecretError(key_path, f"secret file {path} is empty")
    return first_line


async def resolve_secrets(
    config: GatewayConfig,
    *,
    base_dir: Path,
    vault: SecretStore | None,
    redactor: SecretRedactor,
) -> None:
    """Attach the value to every reference in ``config``.

    Raises ``ConfigErrors`` with one line per reference that cannot be resolved.
    """
    errors: list[ConfigError] = []
    for key_path, ref in secret_refs(config):
        if ref.resolved:
            redactor.add(ref.reveal())
            continue
        try:
            if ref.scheme == "vault":
                value = await _from_vault(ref, key_path=key_path, vault=vault)
            else:
                value = read_local_secret(ref, key_path=key_path, base_dir=base_dir)
        except SecretError as exc:
            errors.append(ConfigError(exc.key_path, exc.problem))
            continue
        redactor.add(value)
        ref.attach(value)
    if errors:
        raise ConfigErrors(errors)


async def _from_vault(ref: SecretRef, *, key_path: str, vault: SecretStore | None) -> str:
    if key_path == "security.vault_key":
        raise SecretError(key_path, "the vault key cannot be kept in the vault: use env: or file:")
    if vault is None:
        raise SecretError(key_path, f"{ref} needs the vault, but [security] vault_key is not set")
    try:
        return await vault.get(ref.target)
    except SecretNotFound:
        raise SecretError(
            key_path,
            f"vault entry {ref.target!r} not found: "
            f"add it with `switchboard vault set {ref.target}`",
        ) from None
    except VaultError as exc:
        raise SecretError(key_path, f"cannot read {ref}: {exc.message}") from None


def database_url(loaded: LoadedConfig, *, redactor: SecretRedactor | None = None) -> str:
    """The database URL to connect with: ``[storage] url`` plus ``password`` when set."""
    url = loaded.storage_url
    ref = loaded.config.storage.password
    if ref is None:
        return url
    if ref.scheme == "vault":
        raise ConfigErrors(
            [ConfigError("storage.password", "the vault lives in the database: use env: or file:")]
        )
    try:
        password = read_local_secret(ref, key_path="storage.password", base_dir=loaded.base_dir)
    except SecretError as exc:
        raise ConfigErrors([ConfigError(exc.key_path, exc.problem)]) from None
    ref.attach(password)
    if redactor is not None:
        redactor.add(password)
    return make_url(url).set(password=password).render_as_string(hide_password=False)
