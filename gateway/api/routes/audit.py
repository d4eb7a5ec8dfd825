"""``/api/audit``: page through the audit log, and check its hash chain."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from core.security.audit import record_json
from gateway.api.deps import RuntimeDep
from gateway.api.openapi_docs import error_responses
from gateway.api.paging import (
    MAX_POSITION,
    PAGED_HEADERS,
    PAGING_DESCRIPTION,
    Cursor,
    InvalidCursor,
    Limit,
    announce_next_page,
    decode_int_cursor,
    encode_cursor,
    split_page,
)

router = APIRouter(prefix="/api/audit", tags=["audit"])


_RECORD_EXAMPLE: dict[str, Any] = {
    "seq": 42,
    "at": "2026-11-24T17:02:41.554000+00:00",
    "kind": "conversation.reset",
    "actor": "operator:api",
    "conversation": "telegram:123456",
    "action_id": None,
    "data": {"messages": 12},
    "prev_hash": "9f2c5e0d4b8a7f61c3e2d1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2a190",
    "hash": "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f809",
}


class AuditRecordView(BaseModel):
    """One record as stored; ``hash`` is the SHA-256 of the others' canonical JSON."""

    model_config = ConfigDict(json_schema_extra={"examples": [_RECORD_EXAMPLE]})

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

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"records": [_RECORD_EXAMPLE], "next_after_seq": 42}]}
    )

    records: list[AuditRecordView]
    next_after_seq: int | None = Field(description="null when this is the last page")


class AuditVerdictView(BaseModel):
    """Outcome of a full chain check; ``first_bad_seq`` and ``problem`` are null when ok."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"ok": True, "count": 1042, "first_bad_seq": None, "problem": None},
                {"ok": False, "count": 1042, "first_bad_seq": 7, "problem": "record 6 is missing"},
            ]
        }
    )

    ok: bool
    count: int
    first_bad_seq: int | None
    problem: str | None


@router.get(
    "",
    summary="Audit records, oldest first, in pages",
    description="The hash-chained audit log, oldest first (by `seq`), optionally of one `kind`. "
    "The next page starts after `next_after_seq` (pass it as `after_seq`) or at `cursor`; "
    "give one of the two, not both." + PAGING_DESCRIPTION,
    responses={
        200: {"headers": PAGED_HEADERS},
        **error_responses({422: "a bad limit, after_seq or cursor, or both after_seq and cursor"}),
    },
)
async def list_audit(
    request: Request,
    response: Response,
    runtime: RuntimeDep,
    after_seq: Annotated[
        int, Query(ge=0, le=MAX_POSITION, description="only records after this seq")
    ] = 0,
    limit: Limit = 100,
    kind: Annotated[str | None, Query(max_length=64, description="e.g. config.applied")] = None,
    cursor: Cursor = None,
) -> AuditPage:
    """Keyset paging on ``seq``: stable while new records are appended."""
    if cursor is not None and after_seq:
        raise InvalidCursor("give either after_seq or cursor, not both")
    start = decode_int_cursor(cursor, "audit")
    # One record more than asked tells whether another page exists, without a count.
    found = await runtime.audit.page(
        after_seq=after_seq if start is None else start, limit=limit + 1, kind=kind or None
    )
    records, more = split_page(found, limit)
    if more:
        announce_next_page(request, response, encode_cursor("audit", records[-1].seq))
    return AuditPage(
        records=[AuditRecordView(**record_json(r)) for r in records],
        next_after_seq=records[-1].seq if more else None,
    )


@router.get(
    "/verify",
    summary="Check the whole hash chain",
    description="Recomputes every record's hash and its link to the one before. Always 200: "
    "a broken chain is a finding (`ok: false`, with the first bad `seq`), not a failed request.",
)
async def verify_audit(runtime: RuntimeDep) -> AuditVerdictView:
    """Always 200: a broken chain is a finding (``ok: false``), not a failed request."""
    verdict = await runtime.audit.verify()
    return AuditVerdictView(
        ok=verdict.ok,
        count=verdict.count,
        first_bad_seq=verdict.first_bad_seq,
        problem=verdict.problem,
    )
