"""``GET /api/status``: what this gateway runs, at a glance."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

import gateway
from gateway.api.deps import RuntimeDep

router = APIRouter(prefix="/api", tags=["status"])


class ConfigState(BaseModel):
    """The config file in force."""

    path: str
    generation: int = Field(description="grows with every applied edit")
    errors: list[str] = Field(description="why the last edit was rejected; empty when it was not")


class VaultState(BaseModel):
    """Whether a vault key is configured."""

    enabled: bool


class SecurityState(BaseModel):
    """The approval policy."""

    auto_approve: str = Field(description="the highest level that runs without an approval")
    approvers: int = Field(description="how many approvers are configured")


class StatusView(BaseModel):
    """What this gateway runs, without any secret."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "version": "0.1.0",
                    "config": {"path": "/srv/switchboard.toml", "generation": 2, "errors": []},
                    "storage": "sqlite",
                    "default_provider": "echo",
                    "providers": {"echo": "echo", "claude": "anthropic"},
                    "vault": {"enabled": True},
                    "tools": {"current_time": "low", "shell": "critical"},
                    "security": {"auto_approve": "low", "approvers": 2},
                }
            ]
        }
    )

    version: str
    config: ConfigState
    storage: str = Field(description="sqlite or postgresql")
    default_provider: str | None
    providers: dict[str, str] = Field(description="name: type of each configured provider")
    vault: VaultState
    tools: dict[str, str] = Field(description="name: security level of each enabled tool")
    security: SecurityState


@router.get(
    "/status",
    summary="Version, config, providers, tools and vault state",
    response_model=StatusView,
)
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
