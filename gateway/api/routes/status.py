"""``GET /api/status``: what this gateway runs, at a glance."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

import gateway
from gateway.api.deps import RuntimeDep

router = APIRouter(prefix="/api", tags=["status"])


@router.get("/status", summary="Version, config, providers, tools and vault state")
async def status(runtime: RuntimeDep) -> dict[str, Any]:
    """A summary without any secret: names and types only."""
    config = runtime.config.config
    return {
        "version": gateway.__version__,
        "config": {
            "path": str(runtime.config.path),
            "generation": runtime.holder.generation,
            "errors": list(runtime.holder.errors),
        },
        "storage": "sqlite" if config.storage.is_sqlite else "postgresql",
        "default_provider": config.default_provider,
        "providers": {name: p.type for name, p in config.providers.items()},
        "vault": {"enabled": runtime.vault is not None},
        "tools": {
            name: runtime.assistant.tools.level_of(name).value
            for name in runtime.assistant.tools.names
        },
        "security": {
            "auto_approve": config.security.auto_approve.value,
            "approvers": len(config.security.approvers),
        },
    }
