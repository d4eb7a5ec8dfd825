"""``GET /api/replicas``: the gateway processes sharing this database, and which one answers."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.deps import RuntimeDep
from gateway.replicas import hostname_of

router = APIRouter(prefix="/api", tags=["status"])


class ReplicaView(BaseModel):
    """One registered process."""

    id: str
    role: str = Field(description="gateway (switchboard run) or cli (a CLI command running turns)")
    hostname: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    alive: bool = Field(description="false once it is certainly gone; its work is then taken over")


class ReplicasView(BaseModel):
    """Every registered replica, oldest first."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "this": "3f9c0a1b2c3d4e5f",
                    "replicas": [
                        {
                            "id": "3f9c0a1b2c3d4e5f",
                            "role": "gateway",
                            "hostname": "bot-1",
                            "pid": 812,
                            "started_at": "2026-12-03T09:00:00Z",
                            "heartbeat_at": "2026-12-03T09:41:02Z",
                            "alive": True,
                        }
                    ],
                }
            ]
        }
    )

    this: str = Field(description="the id of the replica that answered")
    replicas: list[ReplicaView]


@router.get("/replicas", summary="The gateway processes sharing this database")
async def replicas(runtime: RuntimeDep) -> ReplicasView:
    """Registered replicas; a dead one stays listed until another replica took its work."""
    replica = runtime.replica
    return ReplicasView(
        this=replica.id,
        replicas=[
            ReplicaView(
                id=record.id,
                role=record.role,
                hostname=hostname_of(record.host),
                pid=record.pid,
                started_at=record.started_at,
                heartbeat_at=record.heartbeat_at,
                alive=not replica.is_dead(record),
            )
            for record in await replica.repo.all()
        ],
    )
