"""How providers are shown, shared by the API and the CLI so that both always agree."""

from __future__ import annotations

from typing import Any

from core.errors import ProviderError
from core.providers.manager import ProviderManager
from gateway.provider_directory import ProviderDirectory


async def provider_views(
    directory: ProviderDirectory, *, probe: bool = True
) -> list[dict[str, Any]]:
    """One dict per provider: name, type, base_url, default_model, is_default, healthy ..."""
    manager = directory.manager
    if probe:
        await manager.health()
    views = []
    for name in manager.names():
        options = manager.spec(name).options
        cached = manager.cached_health(name)
        views.append(
            {
                "name": name,
                "type": options.type_name,
                "base_url": options.base_url,
                "default_model": options.default_model,
                "is_default": name == manager.default_name,
                "healthy": cached.healthy if cached else None,
                "source": directory.source(name),
                "circuit": manager.circuit_state(name),
            }
        )
    return views


async def health_view(manager: ProviderManager) -> dict[str, dict[str, Any]]:
    """``{name: {"healthy", "latency_ms", "error"?}}``."""
    return {
        name: status.model_dump(exclude_none=True)
        for name, status in (await manager.health()).items()
    }


async def model_listing(manager: ProviderManager) -> dict[str, Any]:
    """``{"models": ["provider/model", ...], "errors": {provider: message}}``."""
    models: list[str] = []
    errors: dict[str, str] = {}
    for name, result in (await manager.all_models()).items():
        if isinstance(result, ProviderError):
            errors[name] = result.message
        else:
            models.extend(f"{name}/{model}" for model in result)
    return {"models": models, "errors": errors}
