"""``/api/providers``: list, health, models, run-time registration and the default."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, Field, SecretStr

from core.types import SecurityLevel
from gateway.admin_actions import operator_action
from gateway.api.deps import RuntimeDep
from gateway.api.routes.approvals import API_OPERATOR
from gateway.provider_directory import Registration
from gateway.provider_views import health_view, model_listing, provider_views

router = APIRouter(prefix="/api/providers", tags=["providers"])


class ProviderView(BaseModel):
    """A provider as the API shows it: never any key material."""

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

    healthy: bool
    latency_ms: float | None = None
    error: str | None = None


class RegisterBody(BaseModel):
    """A provider to add while the gateway runs; the key is stored in the vault."""

    name: str = Field(examples=["groq"], max_length=64)
    type: str = Field(examples=["openai_compatible"])
    base_url: str | None = Field(default=None, examples=["https://api.groq.com/openai/v1"])
    api_key: SecretStr | None = None
    default_model: str | None = Field(default=None, examples=["llama-3.3-70b-versatile"])


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


@router.get("/models", summary="Model ids of every provider, as provider/model")
async def all_models(runtime: RuntimeDep) -> dict[str, Any]:
    """``models`` lists ``provider/model`` ids; ``errors`` names providers that failed."""
    return await model_listing(runtime.manager)


@router.get("/{name}/models", summary="Model ids of one provider")
async def provider_models(name: str, runtime: RuntimeDep) -> dict[str, Any]:
    """The ids as that provider's API takes them (cached)."""
    models = await runtime.manager.list_models(name)
    return {"provider": name, "models": models}


@router.post("/register", status_code=201, summary="Add a provider while the gateway runs")
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


@router.post("/{name}/default", summary="Make a provider the default")
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
