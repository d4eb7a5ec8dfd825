"""The one configuration model of Switchboard, parsed from the TOML file by ``gateway``.

This module only describes and validates; it reads no file and no environment variable.
Secret values appear here only as :class:`SecretRef` (``env:NAME``, ``vault:NAME``,
``file:PATH``); ``gateway.secrets`` resolves them in one place.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_serializer,
    model_validator,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from core.budget_config import BudgetsSection
from core.errors import ConfigError, SecretError
from core.providers.registry import known_types
from core.suggest import did_you_mean
from core.types import SecurityLevel

# Types whose API always needs a key.
KEYED_PROVIDER_TYPES = frozenset({"openai", "anthropic", "google", "mistral"})
DEFAULT_BASE_URLS: dict[str, str] = {
    "ollama": "http://127.0.0.1:11434",
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "google": "https://generativelanguage.googleapis.com",
    "mistral": "https://api.mistral.ai",
}
SECRET_SCHEMES = ("env", "vault", "file")
_IDENTITY = re.compile(r"^[a-z][a-z0-9_]*:[^\s:][^\s]*$")


class Section(BaseModel):
    """Base of every config table: immutable, and unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class SecretRef(BaseModel):
    """A reference to a secret: ``env:NAME``, ``vault:NAME`` or ``file:PATH``.

    The clear value is attached by ``gateway.secrets`` after loading and is never part of
    the model's fields, so it cannot be dumped, logged or serialized by accident.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    scheme: Literal["env", "vault", "file"]
    target: str
    _value: str | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any) -> Any:
        if isinstance(data, str):
            scheme, sep, target = data.partition(":")
            if not sep or scheme not in SECRET_SCHEMES or not target.strip():
                # The value may be a pasted secret: never echo it.
                raise ValueError(
                    "secrets are never written in the config file: use a reference "
                    '"env:NAME", "vault:NAME" or "file:PATH"'
                )
            return {"scheme": scheme, "target": target.strip()}
        return data

    @model_serializer
    def _serialize(self) -> str:
        return str(self)

    def __str__(self) -> str:
        return f"{self.scheme}:{self.target}"

    def __repr__(self) -> str:
        return f"SecretRef({str(self)!r})"

    @property
    def resolved(self) -> bool:
        """True once ``gateway.secrets`` has attached the value."""
        return self._value is not None

    def attach(self, value: str) -> None:
        """Attach the resolved value (``gateway.secrets`` only)."""
        self._value = value

    def reveal(self) -> str:
        """The clear value; raises ``SecretError`` if it was never resolved."""
        if self._value is None:
            raise SecretError("", f"secret {self} was not resolved")
        return self._value


class GatewaySection(Section):
    """``[gateway]``: where the admin API listens and how it is protected."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    admin_token: SecretRef | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # "text": key=value lines; "json": one JSON object per line (`run --log-format` wins).
    log_format: Literal["text", "json"] = "text"
    reload_interval_s: float = Field(default=1.0, gt=0, le=5)

    @property
    def is_loopback(self) -> bool:
        """True when only this machine can reach the API."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


class StorageSection(Section):
    """``[storage]``: the database (SQLite file by default, PostgreSQL for scale-out)."""

    url: str = "sqlite+aiosqlite:///./data/switchboard.db"
    # The password is kept out of the URL so that the URL itself is no secret.
    password: SecretRef | None = None
    # Connections kept open per process. Beyond it SQLAlchemy opens overflow connections
    # and closes them on return: with 5, a busy replica opened about one new PostgreSQL
    # connection per message (bench/pipeline, 64 in flight) and PostgreSQL spent half a
    # core on connecting. Mind max_connections (100 by default) across replicas: each may
    # use pool_size + 10 overflow + 1 for its shared locks.
    pool_size: int = Field(default=20, ge=1, le=100)
    echo_sql: bool = False

    @field_validator("url")
    @classmethod
    def _known_driver(cls, url: str) -> str:
        if not url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            driver = url.split("://", 1)[0] if "://" in url else url
            raise ValueError(
                f"unsupported database URL scheme {driver!r}: use "
                "'sqlite+aiosqlite:///PATH' or 'postgresql+asyncpg://USER@HOST/DB'"
            )
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise ValueError("not a database URL (sqlite+aiosqlite:///PATH)") from None
        if parsed.password is not None:
            raise ValueError(
                "the URL carries a password: move it to storage.password "
                '(for example password = "env:SWITCHBOARD_DB_PASSWORD")'
            )
        return url

    @property
    def is_sqlite(self) -> bool:
        """True for the embedded SQLite default."""
        return self.url.startswith("sqlite")


class InjectionSection(Section):
    """``[security.injection]``: prompt-injection screen thresholds and what verdicts do.

    A score at or above ``block_threshold`` is a ``block`` verdict, at or above
    ``flag_threshold`` a ``flag``; tool results use the ``tool_*`` thresholds. ``on_flag``
    and ``on_block`` say what the orchestrator does with each verdict.
    """

    flag_threshold: float = Field(default=0.4, ge=0.0, le=1.0)
    block_threshold: float = Field(default=0.8, ge=0.0, le=1.0)
    tool_flag_threshold: float = Field(default=0.3, ge=0.0, le=1.0)
    tool_block_threshold: float = Field(default=0.6, ge=0.0, le=1.0)
    on_flag: Literal["allow", "warn", "block"] = "warn"
    on_block: Literal["block", "warn"] = "block"

    @model_validator(mode="after")
    def _ordered(self) -> InjectionSection:
        if self.flag_threshold > self.block_threshold:
            raise ValueError(
                f"flag_threshold ({self.flag_threshold}) must not be above "
                f"block_threshold ({self.block_threshold})"
            )
        if self.tool_flag_threshold > self.tool_block_threshold:
            raise ValueError(
                f"tool_flag_threshold ({self.tool_flag_threshold}) must not be above "
                f"tool_block_threshold ({self.tool_block_threshold})"
            )
        return self


class SecuritySection(Section):
    """``[security]``: the vault passphrase, auto-approval threshold and approvers."""

    vault_key: SecretRef | None = None
    auto_approve: SecurityLevel = SecurityLevel.LOW
    approval_timeout_s: int = Field(default=600, ge=10, le=7 * 24 * 3600)
    approvers: tuple[str, ...] = ()
    requester_may_approve_critical: bool = False
    injection: InjectionSection = InjectionSection()

    @field_validator("approvers")
    @classmethod
    def _identities(cls, approvers: tuple[str, ...]) -> tuple[str, ...]:
        for item in approvers:
            if not _IDENTITY.match(item):
                raise ValueError(
                    f"approver {item!r} is not of the form 'platform:user_id' "
                    "(for example 'telegram:123456')"
                )
        return approvers


class AccessSection(Section):
    """``[access]``: who may talk to the assistant, and how often.

    ``allow`` and ``deny`` name identities (``platform:user_id``); an empty ``allow``
    lets everyone in (each channel's own ``allow`` list still applies). The rate limit is
    a token bucket per identity: ``rate_per_minute`` messages a minute on average, bursts
    of up to ``burst``; 0 switches it off.
    """

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    rate_per_minute: int = Field(default=20, ge=0, le=100_000)
    burst: int = Field(default=5, ge=1, le=10_000)

    @field_validator("allow", "deny")
    @classmethod
    def _identities(cls, identities: tuple[str, ...]) -> tuple[str, ...]:
        for item in identities:
            if not _IDENTITY.match(item):
                raise ValueError(
                    f"{item!r} is not of the form 'platform:user_id' (for example 'slack:U0123ABC')"
                )
        return identities


DEFAULT_SYSTEM_PROMPT = (
    "You are Switchboard, a helpful assistant in a team chat. Answer briefly and "
    "accurately. Use a tool only when it helps answer the request."
)


class AssistantSection(Section):
    """``[assistant]``: how the orchestrator talks to the model.

    ``history_tokens`` is the budget (estimated tokens) for the conversation history sent
    with each request, the newest messages first; ``max_tool_rounds`` bounds how many times
    one message may go back to the model with tool results.
    """

    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    history_tokens: int = Field(default=8_000, ge=256, le=2_000_000)
    max_reply_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    max_tool_rounds: int = Field(default=5, ge=0, le=50)
    max_message_chars: int = Field(default=32_000, ge=1, le=1_000_000)


class ProviderSection(Section):
    """``[providers.NAME]``: one configured LLM."""

    type: str
    base_url: str | None = None
    api_key: SecretRef | None = None
    default_model: str | None = None
    default: bool = False
    # Total deadline of an answer (all retries on this provider included); for a stream,
    # the deadline of its first event. read_timeout_s bounds each silence within an answer.
    timeout_s: float = Field(default=60.0, gt=0, le=3600)
    connect_timeout_s: float = Field(default=10.0, gt=0, le=300)
    read_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    max_retries: int = Field(default=2, ge=0, le=10)
    max_concurrency: int = Field(default=32, ge=1, le=10_000)
    headers: dict[str, str] = Field(default_factory=dict)
    models: tuple[str, ...] = ()

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        known = known_types()
        if value not in known:
            raise ValueError(f"unknown provider type {value!r}{did_you_mean(value, known)}")
        return value

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https:// (got {value!r})")
        return value.rstrip("/") if value else value

    @property
    def effective_base_url(self) -> str | None:
        """``base_url`` or the API's official one."""
        return self.base_url or DEFAULT_BASE_URLS.get(self.type)


class RoutingSection(Section):
    """``[routing]``: which providers to try, in order, when the default fails."""

    fallbacks: tuple[str, ...] = ()
    # A provider failing this many times in a row is skipped for circuit_cooldown_s, then probed.
    circuit_failures: int = Field(default=5, ge=1, le=1000)
    circuit_cooldown_s: float = Field(default=30.0, gt=0, le=3600)
    # First pause between retries of a rate-limited call (doubled each time, with jitter).
    retry_backoff_s: float = Field(default=0.5, gt=0, le=60)
    health_cache_s: float = Field(default=10.0, ge=0, le=10)
    models_cache_s: float = Field(default=300.0, ge=0, le=86400)


class TelegramSection(Section):
    """``[channels.telegram]``."""

    enabled: bool = True
    token: SecretRef
    mode: Literal["polling", "webhook"] = "polling"
    secret_token: SecretRef | None = None
    webhook_url: str | None = None
    api_base: str = "https://api.telegram.org"
    allow: tuple[str, ...] = ()


class DiscordSection(Section):
    """``[channels.discord]``."""

    enabled: bool = True
    token: SecretRef
    api_base: str = "https://discord.com/api/v10"
    gateway_url: str = ""
    public_key: str | None = None
    allow: tuple[str, ...] = ()


class SlackSection(Section):
    """``[channels.slack]``."""

    enabled: bool = True
    bot_token: SecretRef
    signing_secret: SecretRef | None = None
    mode: Literal["http", "socket"] = "http"
    app_token: SecretRef | None = None
    api_base: str = "https://slack.com/api/"
    allow: tuple[str, ...] = ()


class ChannelsSection(Section):
    """``[channels]``: the chat platforms to connect."""

    telegram: TelegramSection | None = None
    discord: DiscordSection | None = None
    slack: SlackSection | None = None


class ToolSwitch(Section):
    """A built-in tool with no settings but its switch."""

    enabled: bool = False


class HttpGetTool(Section):
    """``[tools.http_get]``."""

    enabled: bool = False
    allow_hosts: tuple[str, ...] = ()
    allow_private: bool = False
    max_bytes: int = Field(default=512 * 1024, ge=1)
    timeout_s: float = Field(default=10.0, gt=0, le=120)


class ShellTool(Section):
    """``[tools.shell]``: critical; every call waits for an approval."""

    enabled: bool = False
    allow: tuple[str, ...] = ()
    timeout_s: float = Field(default=30.0, gt=0, le=3600)
    max_output_bytes: int = Field(default=64 * 1024, ge=1)
    workdir: str | None = None
    # The whole PATH a command sees: fixed here rather than inherited from the gateway,
    # so neither the gateway's environment nor a file in the workdir picks the binary.
    path: str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ToolsSection(Section):
    """``[tools]``: built-in tools, each off until enabled."""

    current_time: ToolSwitch = ToolSwitch()
    remember: ToolSwitch = ToolSwitch()
    recall: ToolSwitch = ToolSwitch()
    http_get: HttpGetTool = HttpGetTool()
    shell: ShellTool = ShellTool()


class GatewayConfig(Section):
    """The whole ``switchboard.toml``."""

    gateway: GatewaySection = GatewaySection()
    storage: StorageSection = StorageSection()
    security: SecuritySection = SecuritySection()
    access: AccessSection = AccessSection()
    assistant: AssistantSection = AssistantSection()
    providers: dict[str, ProviderSection] = Field(default_factory=dict)
    routing: RoutingSection = RoutingSection()
    channels: ChannelsSection = ChannelsSection()
    tools: ToolsSection = ToolsSection()
    budgets: BudgetsSection = BudgetsSection()

    @property
    def default_provider(self) -> str | None:
        """Name of the provider marked ``default = true`` (or the only / first one)."""
        for name, section in self.providers.items():
            if section.default:
                return name
        return next(iter(self.providers), None)


def semantic_errors(config: GatewayConfig) -> list[ConfigError]:
    """Problems that span several keys, each named by the key path to fix."""
    errors: list[ConfigError] = []
    if not config.gateway.is_loopback and config.gateway.admin_token is None:
        errors.append(
            ConfigError(
                "gateway.admin_token",
                f"required when gateway.host ({config.gateway.host}) is not a loopback "
                'address: set admin_token = "file:./data/admin.token" or "env:NAME"',
            )
        )
    defaults = [name for name, p in config.providers.items() if p.default]
    for extra in defaults[1:]:
        errors.append(
            ConfigError(
                f"providers.{extra}.default",
                f"only one provider can be the default (providers.{defaults[0]} is already)",
            )
        )
    for name, provider in config.providers.items():
        if provider.type in KEYED_PROVIDER_TYPES and provider.api_key is None:
            errors.append(
                ConfigError(
                    f"providers.{name}.api_key",
                    f"required for type {provider.type!r}: "
                    f'api_key = "env:{provider.type.upper()}_API_KEY"',
                )
            )
        if provider.type == "openai_compatible" and provider.base_url is None:
            errors.append(
                ConfigError(
                    f"providers.{name}.base_url",
                    "required for type 'openai_compatible' (for example http://127.0.0.1:8000/v1)",
                )
            )
        if provider.headers and provider.type != "openai_compatible":
            errors.append(
                ConfigError(
                    f"providers.{name}.headers", "only type 'openai_compatible' takes headers"
                )
            )
    names = list(config.providers)
    for index, fallback in enumerate(config.routing.fallbacks):
        if fallback not in config.providers:
            known = ", ".join(names) or "none"
            errors.append(
                ConfigError(
                    f"routing.fallbacks[{index}]",
                    f"unknown provider {fallback!r}{did_you_mean(fallback, names)} "
                    f"(configured: {known})",
                )
            )
    telegram = config.channels.telegram
    if telegram and telegram.mode == "webhook" and telegram.secret_token is None:
        errors.append(
            ConfigError("channels.telegram.secret_token", "required when mode is 'webhook'")
        )
    slack = config.channels.slack
    if slack and slack.mode == "socket" and slack.app_token is None:
        errors.append(ConfigError("channels.slack.app_token", "required when mode is 'socket'"))
    if slack and slack.mode == "http" and slack.signing_secret is None:
        errors.append(ConfigError("channels.slack.signing_secret", "required when mode is 'http'"))
    if config.tools.shell.enabled and not config.tools.shell.allow:
        errors.append(ConfigError("tools.shell.allow", "list the commands the shell tool may run"))
    return errors


def secret_refs(model: BaseModel, prefix: str = "") -> list[tuple[str, SecretRef]]:
    """Every secret reference in ``model`` with its key path, in file order."""
    found: list[tuple[str, SecretRef]] = []
    for field_name in type(model).model_fields:
        value = getattr(model, field_name)
        path = f"{prefix}{field_name}"
        found.extend(_refs_in(value, path))
    return found


def _refs_in(value: Any, path: str) -> list[tuple[str, SecretRef]]:
    if isinstance(value, SecretRef):
        return [(path, value)]
    if isinstance(value, BaseModel):
        return secret_refs(value, f"{path}.")
    if isinstance(value, dict):
        found: list[tuple[str, SecretRef]] = []
        for key, item in value.items():
            found.extend(_refs_in(item, f"{path}.{key}"))
        return found
    return []
