"""``/api/audit``: page through the audit log, and check its hash chain."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from core.security.audit import record_json
from gateway.api.deps import RuntimeDep

router = APIRouter(prefix="/api/audit", tags=["audit"])


class AuditRecordView(BaseModel):
    """One record as stored; ``hash`` is the SHA-256 of the others' canonical JSON."""

    seq: int
    at: str = Field(description="ISO 8601, UTC, microseconds")
    kind: str
    actor: str | None
    conversation: str | None
    action_id: str | None
    data: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    """Records oldest first; pass ``next_after_seq`` as ``after_seq`` for the next page."""

    records: list[AuditRecordView]
    next_after_seq: int | None = Field(description="null when this is the last page")


class AuditVerdictView(BaseModel):
    """Outcome of a full chain check; ``first_bad_seq`` and ``problem`` are null when ok."""

    ok: bool
    count: int
    first_bad_seq: int | None
    problem: str | None


@router.get("", summary="Audit records, oldest first, in pages")
async def list_audit(
    runtime: RuntimeDep,
    after_seq: Annotated[int, Query(ge=0, description="only records after this seq")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    kind: Annotated[str | None, Query(max_length=64, description="e.g. config.applied")] = None,
) -> AuditPage:
    """Keyset paging on ``seq``: stable while new records are appended."""
    # One record more than asked tells whether another page exists, without a count.
    records = await runtime.audit.page(after_seq=after_seq, limit=limit + 1, kind=kind or None)
    more = len(records) > limit
    records = records[:limit]
    return AuditPage(
        records=[AuditRecordView(**record_json(r)) for r in records],
        next_after_seq=records[-1].seq if more else None,
    )


@router.get("/verify", summary="Check the whole hash chain")
async def verify_audit(runtime: RuntimeDep) -> AuditVerdictView:
    """Always 200: a broken chain is a finding (``ok: false``), not a failed request."""
    verdict = await runtime.audit.verify()
    return AuditVerdictView(
        ok=verdict.ok,
        count=verdict.count,
        first_bad_seq=verdict.first_bad_seq,
        problem=verdict.problem,
    )
