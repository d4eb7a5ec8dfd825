"""Liveness and readiness: ``/healthz`` and ``/readyz`` (no token needed)."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from core.errors import StorageError
from gateway.api.deps import RuntimeDep
from gateway.channel_host import STANDBY

router = APIRouter(tags=["health"])

_DB_PROBE_TIMEOUT_S = 2.0


class LiveView(BaseModel):
    """The process answers."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok"}]})

    status: Literal["ok"]


class DatabaseReadiness(BaseModel):
    """Whether the database answered a ping within 2 s."""

    ok: bool
    error: str | None = Field(default=None, description="only when not ok")


class ConfigReadiness(BaseModel):
    """The config in force, and the last edit if it was rejected."""

    ok: bool = Field(description="false while the last edit of the file is rejected")
    path: str
    generation: int
    applied_at: str
    errors: list[str] | None = Field(default=None, description="only when not ok")
    rejected_at: str | None = None
    message: str | None = None


class ChannelReadiness(BaseModel):
    """One chat platform's connection."""

    connected: bool
    state: str


class ReadyChecks(BaseModel):
    """Each part checked."""

    database: DatabaseReadiness
    config: ConfigReadiness
    channels: dict[str, ChannelReadiness]


class ReadyView(BaseModel):
    """``ok``, ``degraded`` (still serving) or ``unavailable`` (503)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ok",
                    "checks": {
                        "database": {"ok": True},
                        "config": {
                            "ok": True,
                            "path": "/srv/switchboard/switchboard.toml",
                            "generation": 3,
                            "applied_at": "2026-11-24T17:02:41.554000+00:00",
                        },
                        "channels": {"telegram": {"connected": True, "state": "connected"}},
                    },
                }
            ]
        }
    )

    status: Literal["ok", "degraded", "unavailable"]
    checks: ReadyChecks


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> LiveView:
    """Always ``{"status": "ok"}`` while the process serves requests."""
    return LiveView(status="ok")


@router.get(
    "/readyz",
    summary="Readiness: database, config, channels",
    response_model=ReadyView,
    responses={503: {"description": "the database cannot be used", "model": ReadyView}},
)
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    """Database reachable and the state of the config file.

    A rejected config edit makes the status ``degraded`` (the last good config keeps
    serving, so the answer stays 200); a database that cannot be used makes it 503.
    """
    database: dict[str, Any] = {"ok": True}
    try:
        await asyncio.wait_for(runtime.db.ping(), timeout=_DB_PROBE_TIMEOUT_S)
    except (StorageError, TimeoutError) as exc:
        database = {"ok": False, "error": str(exc) or "timed out"}
    holder = runtime.holder
    config: dict[str, Any] = {
        "ok": not holder.errors,
        "path": str(holder.current.path),
        "generation": holder.generation,
        "applied_at": holder.applied_at.isoformat(),
    }
    if holder.errors:
        config["errors"] = list(holder.errors)
        config["rejected_at"] = holder.rejected_at.isoformat() if holder.rejected_at else None
        config["message"] = "the last edit was rejected; the last good config is still in force"
    channels = {
        name: {"connected": state["connected"], "state": state["state"]}
        for name, state in runtime.channel_status().items()
    }
    status = "ok"
    if not database["ok"]:
        status = "unavailable"
    elif holder.errors or not all(
        c["connected"] or c["state"] == STANDBY for c in channels.values()
    ):
        status = "degraded"
    checks = {"database": database, "config": config, "channels": channels}
    body = {"status": status, "checks": checks}
    return JSONResponse(body, status_code=503 if status == "unavailable" else 200)
