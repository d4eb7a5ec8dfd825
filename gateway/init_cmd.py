"""``switchboard init``: a commented sample config, a data folder and fresh random secrets."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from importlib import resources
from pathlib import Path


@dataclass(frozen=True)
class InitResult:
    """What ``init`` wrote."""

    config: Path
    data_dir: Path
    vault_key: Path
    admin_token: Path


def _write_private(path: Path, text: str) -> None:
    """Create ``path`` readable by its owner only; never overwrite."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def sample_config_text() -> str:
    """The commented sample ``switchboard.toml``."""
    return resources.files("gateway").joinpath("sample_config.toml").read_text(encoding="utf-8")


def init_workspace(config_path: Path) -> InitResult:
    """Write the sample config at ``config_path`` and ``data/`` beside it.

    Raises ``FileExistsError`` naming the first file that already exists; nothing is
    overwritten, so running it twice never destroys a vault key.
    """
    base = config_path.parent
    data_dir = base / "data"
    vault_key = data_dir / "vault.key"
    admin_token = data_dir / "admin.token"
    for path in (config_path, vault_key, admin_token):
        if path.exists():
            raise FileExistsError(str(path))
    base.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(mode=0o700, exist_ok=True)
    _write_private(vault_key, secrets.token_urlsafe(32) + "\n")
    _write_private(admin_token, secrets.token_urlsafe(32) + "\n")
    config_fd = os.open(config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    with os.fdopen(config_fd, "w", encoding="utf-8") as handle:
        handle.write(sample_config_text())
    return InitResult(
        config=config_path, data_dir=data_dir, vault_key=vault_key, admin_token=admin_token
    )
