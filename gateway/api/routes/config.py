"""``/api/config``: the config in force (references only, never values), validate, reload."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from core.errors import ConfigErrors
from gateway.api.deps import RuntimeDep
from gateway.config_loader import parse_config
from gateway.reload import ConfigWatcher

router = APIRouter(prefix="/api/config", tags=["config"])


class ConfigText(BaseModel):
    """A whole ``switchboard.toml`` to validate."""

    model_config = ConfigDict(
        strict=True,
        json_schema_extra={
            "examples": [{"text": '[providers.echo]\ntype = "echo"\ndefault = true\n'}]
        },
    )

    text: str = Field(max_length=1_000_000, examples=['[providers.echo]\ntype = "echo"\n'])


class ConfigCheck(BaseModel):
    """Outcome of a validation: ``errors`` has one ``KEY.PATH: problem`` line each."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "ok": False,
                    "errors": [
                        "providers.c.type: unknown provider type 'antropic' "
                        "(did you mean 'anthropic'?)"
                    ],
                }
            ]
        }
    )

    ok: bool
    errors: list[str]


class ConfigView(BaseModel):
    """The config in force as parsed; secrets appear as ``env:``/``vault:``/``file:`` references."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "path": "/srv/switchboard/switchboard.toml",
                    "generation": 2,
                    "errors": [],
                    "config": {"gateway": {"admin_token": "file:./data/admin.token"}},
                }
            ]
        }
    )

    path: str
    generation: int = Field(description="grows with every applied edit")
    errors: list[str] = Field(description="why the last edit was rejected; empty when it was not")
    config: dict[str, Any] = Field(description="every section, defaults filled in")


class ReloadView(BaseModel):
    """Whether the file was applied now, and the state after."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"applied": True, "generation": 3, "errors": []}]}
    )

    applied: bool = Field(description="false when the file is unchanged or the edit is invalid")
    generation: int
    errors: list[str] = Field(description="why the edit was rejected; the config in force stays")


@router.get(
    "",
    summary="The config in force; secrets appear only as references",
    response_model=ConfigView,
)
async def current_config(runtime: RuntimeDep) -> dict[str, Any]:
    """``SecretRef`` fields serialize as ``env:NAME`` / ``vault:NAME`` / ``file:PATH``."""
    return {
        "path": str(runtime.config.path),
        "generation": runtime.holder.generation,
        "errors": list(runtime.holder.errors),
        "config": runtime.config.config.model_dump(mode="json"),
    }


@router.post("/validate", summary="Validate a config text without applying it")
async def validate_config(body: ConfigText, runtime: RuntimeDep) -> ConfigCheck:
    """Syntax, keys, values and cross-key rules; secret references are not resolved."""
    try:
        parse_config(body.text, path=runtime.config.path)
    except ConfigErrors as exc:
        return ConfigCheck(ok=False, errors=[e.message for e in exc.errors])
    return ConfigCheck(ok=True, errors=[])


@router.post(
    "/reload",
    summary="Read the config file now instead of at the next poll",
    response_model=ReloadView,
)
async def reload_config(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    """Applies a valid edit at once; an invalid one is reported and the config in force stays."""
    watcher: ConfigWatcher = request.app.state.config_watcher
    applied = await watcher.check_once(force=True)
    return {
        "applied": applied,
        "generation": runtime.holder.generation,
        "errors": list(runtime.holder.errors),
    }
