"""``/api/config``: the config in force (references only, never values), validate, reload."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from core.errors import ConfigErrors
from gateway.api.deps import RuntimeDep
from gateway.config_loader import parse_config
from gateway.reload import ConfigWatcher

router = APIRouter(prefix="/api/config", tags=["config"])


class ConfigText(BaseModel):
    """A whole ``switchboard.toml`` to validate."""

    text: str = Field(max_length=1_000_000, examples=['[providers.echo]\ntype = "echo"\n'])


class ConfigCheck(BaseModel):
    """Outcome of a validation: ``errors`` has one ``KEY.PATH: problem`` line each."""

    ok: bool
    errors: list[str]


@router.get("", summary="The config in force; secrets appear only as references")
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


@router.post("/reload", summary="Read the config file now instead of at the next poll")
async def reload_config(request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    """Applies a valid edit at once; an invalid one is reported and the config in force stays."""
    watcher: ConfigWatcher = request.app.state.config_watcher
    applied = await watcher.check_once(force=True)
    return {
        "applied": applied,
        "generation": runtime.holder.generation,
        "errors": list(runtime.holder.errors),
    }
