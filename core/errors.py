"""The one error tree of Switchboard.

Every error raised on purpose derives from :class:`SwitchboardError` and carries

* ``code``: a stable machine code (``snake_case``) that the API puts in
  ``{"error": {"code": ...}}``;
* ``message``: a sentence for the person who will read it, saying what to do next
  where there is something to do.

::

    SwitchboardError
    ├── ConfigError(key_path)           a config value is wrong; names its key path
    │   └── ConfigFileError             the file cannot be read or is not TOML
    ├── SecretError(key_path)           a secret reference cannot be resolved
    ├── StorageError                    the database cannot be used
    │   └── SchemaOutOfDate             migrations have not been applied
    ├── VaultError
    │   ├── VaultKeyMismatch            the passphrase does not open this vault
    │   └── SecretNotFound(name)
    ├── NotFound                        a named thing does not exist (404)
    ├── Conflict                        the request clashes with current state (409)
    │   └── ApprovalConflict            the approval was already decided
    ├── PermissionDenied                authenticated, but not allowed (403)
    ├── RateLimited(retry_after)        too many requests (429)
    │   └── BudgetExceeded              a token budget or daily request limit is used up
    ├── ToolError(tool)                 a tool refused or failed; the message goes to the model
    ├── DeliveryError                   a channel could not deliver an outbound message
    │   ├── DeliveryRetry(retry_after)  try again later (rate limit, outage)
    │   └── DeliveryRefused             refused for good (bad request, chat gone)
    └── ProviderError(provider)         an LLM provider failed
        ├── ProviderRateLimited         429: retried after Retry-After, within max_retries
        ├── ProviderOverloaded          529 / 503 overloaded: retried like a rate limit
        ├── ProviderUnavailable         cannot answer now; falls back along [routing] fallbacks
        │   ├── ProviderServerError     5xx
        │   ├── ProviderTimeout         connect, read or total deadline passed
        │   ├── ProviderConnectionError refused, reset, DNS, TLS
        │   ├── ProviderStreamBroken    a stream ended early or carried an error event
        │   └── CircuitOpen             too many recent failures; probed again later
        ├── ProviderAuthError           401/403: the provider rejected the credentials
        ├── ProviderBadRequest          4xx: the request itself is wrong; never retried elsewhere
        │   └── ContextTooLong          the conversation does not fit the model's context
        └── ProviderNotFound            no provider (or model) of that name is configured

Retry and fallback rules (``core.providers.manager``): rate limits and overloads are
retried on the same provider; unavailability and auth errors fall back to the next
provider; bad requests do neither.
"""

from __future__ import annotations


class SwitchboardError(Exception):
    """Root of every error Switchboard raises on purpose."""

    code: str = "error"
    http_status: int = 500

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class ConfigError(SwitchboardError):
    """A configuration value is wrong; ``key_path`` names it (``providers.claude.type``)."""

    code = "config_invalid"
    http_status = 400

    def __init__(self, key_path: str, problem: str) -> None:
        super().__init__(f"{key_path}: {problem}" if key_path else problem)
        self.key_path = key_path
        self.problem = problem


class ConfigFileError(ConfigError):
    """The config file is missing, unreadable or not valid TOML."""

    code = "config_unreadable"


class ConfigErrors(SwitchboardError):
    """Several configuration problems found at once; ``errors`` lists each."""

    code = "config_invalid"
    http_status = 400

    def __init__(self, errors: list[ConfigError]) -> None:
        super().__init__("\n".join(e.message for e in errors))
        self.errors = errors


class SecretError(SwitchboardError):
    """A secret reference (``env:``, ``vault:``, ``file:``) cannot be resolved."""

    code = "secret_unresolved"
    http_status = 500

    def __init__(self, key_path: str, problem: str) -> None:
        super().__init__(f"{key_path}: {problem}" if key_path else problem)
        self.key_path = key_path
        self.problem = problem


class StorageError(SwitchboardError):
    """The database cannot be reached or used."""

    code = "storage_unavailable"
    http_status = 503


class SchemaOutOfDate(StorageError):
    """The database schema is older (or newer) than this version of Switchboard expects."""

    code = "schema_out_of_date"

    def __init__(self, *, current: str | None, expected: str) -> None:
        shown = current or "empty"
        super().__init__(
            f"database schema is out of date (at {shown}, this version needs {expected}): "
            "run `switchboard migrate`, or start with `switchboard run --migrate`"
        )
        self.current = current
        self.expected = expected


class VaultError(SwitchboardError):
    """The encrypted vault cannot do what was asked."""

    code = "vault_error"
    http_status = 500


class VaultKeyMismatch(VaultError):
    """The passphrase from ``[security] vault_key`` does not open this vault."""

    code = "vault_key_mismatch"

    def __init__(self, detail: str = "") -> None:
        message = "vault key does not match"
        if detail:
            message = f"{message}: {detail}"
        super().__init__(message)


class VaultNotConfigured(VaultError):
    """A secret must be stored, but the gateway runs without a vault."""

    code = "vault_not_configured"
    http_status = 409


class SecretNotFound(VaultError):
    """No vault entry has this name."""

    code = "secret_not_found"
    http_status = 404

    def __init__(self, name: str) -> None:
        super().__init__(
            f"no vault entry named {name!r}: add it with `switchboard vault set {name}`"
        )
        self.name = name


class NotFound(SwitchboardError):
    """A named thing does not exist."""

    code = "not_found"
    http_status = 404


class Conflict(SwitchboardError):
    """The request clashes with the current state."""

    code = "conflict"
    http_status = 409


class ApprovalConflict(Conflict):
    """The approval was already decided; nothing more will run."""

    code = "already_decided"


class PermissionDenied(SwitchboardError):
    """The caller is known but not allowed to do this."""

    code = "forbidden"
    http_status = 403


class RateLimited(SwitchboardError):
    """Too many requests; try again after ``retry_after`` seconds (when known)."""

    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BudgetExceeded(RateLimited):
    """A ``[budgets]`` limit is used up; ``retry_after`` is when its UTC day or month ends."""

    code = "budget_exceeded"


class DeliveryError(SwitchboardError):
    """A channel could not deliver an outbound message."""

    code = "delivery_failed"
    http_status = 502


class DeliveryRetry(DeliveryError):
    """Worth trying again later (rate limit, outage); ``retry_after`` when the platform says."""

    code = "delivery_retry"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeliveryRefused(DeliveryError):
    """The platform refused the message for good (bad request, chat gone, bot blocked)."""

    code = "delivery_refused"


class ToolError(SwitchboardError):
    """A tool refused its arguments or failed; ``message`` is shown to the model and user."""

    code = "tool_error"
    http_status = 400

    def __init__(self, message: str, *, tool: str) -> None:
        super().__init__(message)
        self.tool = tool


class ProviderError(SwitchboardError):
    """An LLM provider failed; ``provider`` names it."""

    code = "provider_error"
    http_status = 502

    def __init__(self, message: str, *, provider: str, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.provider = provider


class ProviderRateLimited(ProviderError):
    """The provider answered 429; ``retry_after`` is its hint in seconds, when given."""

    code = "provider_rate_limited"
    http_status = 429

    def __init__(self, message: str, *, provider: str, retry_after: float | None = None) -> None:
        super().__init__(message, provider=provider)
        self.retry_after = retry_after


class ProviderOverloaded(ProviderRateLimited):
    """The provider is overloaded (Anthropic 529, "overloaded" 503s)."""

    code = "provider_overloaded"
    http_status = 503


class ProviderUnavailable(ProviderError):
    """The provider cannot answer now: connection, timeout, server error or open circuit."""

    code = "provider_unavailable"
    http_status = 503


class ProviderServerError(ProviderUnavailable):
    """The provider answered with a 5xx status."""

    code = "provider_server_error"
    http_status = 502


class ProviderTimeout(ProviderUnavailable):
    """Connecting, reading or the whole request took longer than allowed."""

    code = "provider_timeout"
    http_status = 504


class ProviderConnectionError(ProviderUnavailable):
    """The provider could not be reached (refused, reset, DNS, TLS)."""

    code = "provider_connection"
    http_status = 502


class ProviderStreamBroken(ProviderUnavailable):
    """A stream ended before its end event, was malformed, or carried an error event."""

    code = "provider_stream_broken"
    http_status = 502


class CircuitOpen(ProviderUnavailable):
    """The provider failed repeatedly; calls are refused until a probe succeeds."""

    code = "provider_circuit_open"
    http_status = 503


class ProviderAuthError(ProviderError):
    """The provider rejected the credentials."""

    code = "provider_auth"
    http_status = 502


class ProviderBadRequest(ProviderError):
    """The provider rejected the request itself; retrying elsewhere will not help."""

    code = "provider_bad_request"
    http_status = 400


class ContextTooLong(ProviderBadRequest):
    """The conversation is longer than the model's context window."""

    code = "context_too_long"
    http_status = 400


class ProviderNotFound(NotFound):
    """No provider (or model) of that name is configured."""

    code = "provider_not_found"
