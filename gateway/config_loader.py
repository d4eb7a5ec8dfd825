"""Reading ``switchboard.toml`` into a validated :class:`GatewayConfig`."""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.engine import make_url

from core.config import GatewayConfig, semantic_errors
from core.config_errors import config_errors
from core.errors import ConfigErrors, ConfigFileError

DEFAULT_CONFIG_NAME = "switchboard.toml"
CONFIG_ENV_VAR = "SWITCHBOARD_CONFIG"
_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """A validated config with where it came from; relative paths resolve against ``base_dir``."""

    config: GatewayConfig
    path: Path
    digest: str

    @property
    def base_dir(self) -> Path:
        """The folder of the config file."""
        return self.path.parent

    @property
    def storage_url(self) -> str:
        """``[storage] url`` with a relative SQLite path made absolute."""
        return absolute_storage_url(self.config.storage.url, self.base_dir)


def config_path(explicit: str | None) -> Path:
    """``--config``, else ``$SWITCHBOARD_CONFIG``, else ``./switchboard.toml``."""
    chosen = explicit or os.environ.get(CONFIG_ENV_VAR) or DEFAULT_CONFIG_NAME
    return Path(chosen).expanduser().absolute()


def read_config_text(path: Path) -> str:
    """The file's text, or a ``ConfigFileError`` saying what to do."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigFileError(
            "", f"{path}: no config file here: create one with `switchboard init`"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigFileError("", f"{path}: cannot read the config file: {exc}") from None


def parse_config(text: str, *, path: Path) -> LoadedConfig:
    """Validate TOML text; raises ``ConfigErrors`` listing every problem by key path."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _TOML_POSITION.search(str(exc))
        where = f"line {match.group(1)}" if match else "somewhere"
        reason = _TOML_POSITION.sub("", str(exc)).strip()
        problem = f"{path}: {where}: TOML syntax error: {reason}"
        raise ConfigErrors([ConfigFileError("", problem)]) from None
    try:
        config = GatewayConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigErrors(config_errors(exc)) from None
    problems = semantic_errors(config)
    if problems:
        raise ConfigErrors(problems)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return LoadedConfig(config=config, path=path, digest=digest)


def load_config(path: Path) -> LoadedConfig:
    """Read and validate the config file at ``path``."""
    try:
        text = read_config_text(path)
    except ConfigFileError as exc:
        raise ConfigErrors([exc]) from None
    return parse_config(text, path=path)


def absolute_storage_url(url: str, base_dir: Path) -> str:
    """Make a relative SQLite file path absolute against the config file's folder."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite"):
        return url
    database = parsed.database or ""
    if not database or database == ":memory:" or Path(database).is_absolute():
        return url
    absolute = (base_dir / database).resolve()
    return parsed.set(database=str(absolute)).render_as_string(hide_password=False)
