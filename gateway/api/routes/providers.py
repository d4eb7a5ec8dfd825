"""``/api/providers``: list, health, models, run-time registration and the default."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from core.types import SecurityLevel
from gateway.admin_actions import operator_action
from gateway.api.deps import RuntimeDep
from gateway.api.openapi_docs import error_responses
from gateway.api.routes.approvals import API_OPERATOR
from gateway.provider_directory import Registration
from gateway.provider_views import health_view, model_listing, provider_views

router = APIRouter(prefix="/api/providers", tags=["providers"])


_PROVIDER_EXAMPLE: dict[str, Any] = {
    "name": "claude",
    "type": "anthropic",
    "base_url": "https://api.anthropic.com",
    "default_model": "claude-sonnet-4-5",
    "is_default": True,
    "healthy": True,
    "source": "config",
    "circuit": "closed",
}
_UNKNOWN = {404: "no provider of that name (`provider_not_found`)"}
_PROVIDER_FAILED = {
    502: "the provider failed or rejected the credentials",
    503: "the provider is unavailable or its circuit is open",
    504: "the provider did not answer in time",
}


class ProviderView(BaseModel):
    """A provider as the API shows it: never any key material."""

    model_config = ConfigDict(json_schema_extra={"examples": [_PROVIDER_EXAMPLE]})

    name: str
    type: str
    base_url: str
    default_model: str | None
    is_default: bool
    healthy: bool | None = Field(description="last health probe (cached up to 10 s)")
    source: str = Field(description="config, registered or implicit")
    circuit: str = Field(description="closed, open or half_open")


class HealthView(BaseModel):
    """One provider's health probe."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"healthy": True, "latency_ms": 41.7}]}
    )

    healthy: bool
    latency_ms: float | None = None
    error: str | None = None


class RegisterBody(BaseModel):
    """A provider to add while the gateway runs; the key is stored in the vault."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "groq",
                    "type": "openai_compatible",
                    "base_url": "https://api.groq.com/openai/v1",
                    "api_key": "gsk_example_not_a_real_key",
                    "default_model": "llama-3.3-70b-versatile",
                }
            ]
        }
    )

    name: str = Field(
        examples=["groq"],
        max_length=64,
        description="1-64 of a-z, 0-9, `_` and `-`, starting with a letter or digit",
        json_schema_extra={"pattern": "^[a-z0-9][a-z0-9_-]{0,63}$"},
    )
    type: str = Field(
        examples=["openai_compatible"],
        description="ollama, openai, anthropic, google, mistral, openai_compatible, echo, or a "
        "type installed under the `switchboard.providers` entry point; all but ollama, "
        "openai_compatible and echo need an api_key",
    )
    base_url: str | None = Field(default=None, examples=["https://api.groq.com/openai/v1"])
    api_key: SecretStr | None = None
    default_model: str | None = Field(default=None, examples=["llama-3.3-70b-versatile"])


class ModelListing(BaseModel):
    """Model ids of every provider; a provider that failed is named in ``errors``."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "models": ["echo/echo", "claude/claude-sonnet-4-5"],
                    "errors": {"local": "cannot connect to http://127.0.0.1:11434"},
                }
            ]
        }
    )

    models: list[str] = Field(description="`provider/model` ids")
    errors: dict[str, str] = Field(description="provider: what went wrong")


class ProviderModels(BaseModel):
    """One provider's model ids, as its API takes them."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"provider": "claude", "models": ["claude-sonnet-4-5", "claude-haiku-4-5"]}
            ]
        }
    )

    provider: str
    models: list[str]


class DefaultProvider(BaseModel):
    """The default provider now."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"default": "claude"}]})

    default: str


@router.get("", summary="Every provider, never a key")
async def list_providers(runtime: RuntimeDep) -> list[ProviderView]:
    """Configured and registered providers with their last health probe."""
    return [ProviderView(**view) for view in await provider_views(runtime.providers)]


@router.get(
    "/health",
    summary="Health of every provider (cached up to 10 s)",
    response_model_exclude_none=True,
)
async def providers_health(runtime: RuntimeDep) -> dict[str, HealthView]:
    """A cheap authenticated model-listing probe per provider, never a paid chat call."""
    return {n: HealthView(**v) for n, v in (await health_view(runtime.manager)).items()}


@router.get(
    "/models",
    summary="Model ids of every provider, as provider/model",
    response_model=ModelListing,
)
async def all_models(runtime: RuntimeDep) -> dict[str, Any]:
    """``models`` lists ``provider/model`` ids; ``errors`` names providers that failed."""
    return await model_listing(runtime.manager)


@router.get(
    "/{name}/models",
    summary="Model ids of one provider",
    response_model=ProviderModels,
    responses=error_responses({**_UNKNOWN, **_PROVIDER_FAILED}),
)
async def provider_models(name: str, runtime: RuntimeDep) -> dict[str, Any]:
    """The ids as that provider's API takes them (cached)."""
    models = await runtime.manager.list_models(name)
    return {"provider": name, "models": models}


@router.post(
    "/register",
    status_code=201,
    summary="Add a provider while the gateway runs",
    responses=error_responses(
        {
            400: "a bad name, unknown type, bad base_url or missing api_key "
            "(`provider_bad_request`), or a body that is not JSON",
            409: "a provider of that name exists (`conflict`)",
        }
    ),
)
async def register_provider(
    body: Annotated[RegisterBody, Body()], runtime: RuntimeDep
) -> ProviderView:
    """Persisted across restarts; the API key is stored encrypted in the vault."""
    details = {
        "name": body.name,
        "type": body.type,
        "base_url": body.base_url,
        "default_model": body.default_model,
        "api_key": "[stored in the vault]" if body.api_key else None,
    }
    async with operator_action(
        runtime.approvals,
        "provider.register",
        level=SecurityLevel.HIGH,
        actor=API_OPERATOR,
        details=details,
    ):
        await runtime.providers.register(
            Registration(
                name=body.name,
                type=body.type,
                base_url=body.base_url,
                api_key=body.api_key.get_secret_value() if body.api_key else None,
                default_model=body.default_model,
            )
        )
    views = await provider_views(runtime.providers, probe=False)
    return ProviderView(**next(v for v in views if v["name"] == body.name))


@router.post(
    "/{name}/default",
    summary="Make a provider the default",
    response_model=DefaultProvider,
    responses=error_responses(_UNKNOWN),
)
async def set_default(name: str, runtime: RuntimeDep) -> dict[str, str]:
    """Persisted; holds until the config file names another default."""
    runtime.manager.spec(name)  # 404 before anything is recorded
    async with operator_action(
        runtime.approvals,
        "provider.default",
        level=SecurityLevel.MEDIUM,
        actor=API_OPERATOR,
        details={"name": name},
    ):
        await runtime.providers.set_default(name)
    return {"default": name}
