"""``/api/approvals`` and ``/api/actions``: operator decisions and the action ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from core.storage.action_repo import StoredAction
from core.types import ActionStatus, Approval, ApprovalStatus, ConversationKey, SecurityLevel
from gateway.api.deps import RuntimeDep
from gateway.runtime import Runtime

router = APIRouter(prefix="/api", tags=["approvals"])
API_OPERATOR = "operator:api"


class ApprovalView(BaseModel):
    """An approval with the action it would run."""

    id: str
    action_id: str
    status: ApprovalStatus
    level: SecurityLevel
    tool: str | None
    arguments: dict[str, Any]
    requested_by: str | None
    decided_by: str | None
    created_at: datetime
    expires_at: datetime
    decided_at: datetime | None


class ActionView(BaseModel):
    """One action of the ledger."""

    id: str
    kind: str
    level: SecurityLevel
    status: ActionStatus
    conversation: str | None
    requester: str | None
    payload: dict[str, Any]
    result: str | None
    error: str | None
    created_at: datetime
    updated_at: datetime


def approval_view(approval: Approval, stored: StoredAction | None) -> ApprovalView:
    """An approval for the API, with the tool and arguments it is bound to."""
    payload = stored.action.payload if stored else {}
    return ApprovalView(
        id=approval.id,
        action_id=approval.action_id,
        status=approval.status,
        level=approval.level,
        tool=payload.get("tool"),
        arguments=payload.get("arguments", {}),
        requested_by=approval.requested_by,
        decided_by=approval.decided_by,
        created_at=approval.created_at,
        expires_at=approval.expires_at,
        decided_at=approval.decided_at,
    )


def action_view(stored: StoredAction) -> ActionView:
    """An action for the API."""
    action = stored.action
    return ActionView(
        id=action.id,
        kind=action.kind.value,
        level=action.level,
        status=action.status,
        conversation=str(action.conversation) if action.conversation else None,
        requester=action.requester,
        payload=action.payload,
        result=stored.result,
        error=stored.error,
        created_at=action.created_at,
        updated_at=action.updated_at,
    )


StatusFilter = Literal["pending", "approved", "rejected", "expired", "all"]


@router.get("/approvals", summary="Approvals, pending ones by default")
async def list_approvals(
    runtime: RuntimeDep,
    status: StatusFilter = "pending",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ApprovalView]:
    """Newest first; ``status=all`` for every state."""
    statuses = [] if status == "all" else [ApprovalStatus(status)]
    approvals = await runtime.approvals.list_approvals(statuses, limit=limit)
    return [approval_view(a, await runtime.approvals.get_action(a.action_id)) for a in approvals]


@router.get("/approvals/{approval_id}", summary="One approval")
async def get_approval(approval_id: str, runtime: RuntimeDep) -> ApprovalView:
    """404 when unknown."""
    approval = await runtime.approvals.get_approval(approval_id)
    return approval_view(approval, await runtime.approvals.get_action(approval.action_id))


async def _decide(approval_id: str, runtime: Runtime, *, approve: bool) -> ApprovalView:
    approval = await runtime.approvals.decide(approval_id, approve=approve, decider=API_OPERATOR)
    # Run it here and now (this process has the channels to answer in); the sweeper would
    # otherwise pick it up within a second.
    await runtime.orchestrator.settle(approval)
    return approval_view(approval, await runtime.approvals.get_action(approval.action_id))


@router.post(
    "/approvals/{approval_id}/approve",
    summary="Approve (as the operator)",
    responses={409: {"description": "already decided or expired"}},
)
async def approve(approval_id: str, runtime: RuntimeDep) -> ApprovalView:
    """Runs the action once; a decided approval answers 409 ``already_decided``."""
    return await _decide(approval_id, runtime, approve=True)


@router.post(
    "/approvals/{approval_id}/reject",
    summary="Reject (as the operator)",
    responses={409: {"description": "already decided or expired"}},
)
async def reject(approval_id: str, runtime: RuntimeDep) -> ApprovalView:
    """Nothing runs; a decided approval answers 409 ``already_decided``."""
    return await _decide(approval_id, runtime, approve=False)


@router.get("/actions", summary="Actions, newest first, filterable")
async def list_actions(
    runtime: RuntimeDep,
    status: Annotated[list[ActionStatus] | None, Query()] = None,
    level: Annotated[list[SecurityLevel] | None, Query()] = None,
    conversation: str | None = Query(default=None, examples=["telegram:42"]),
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ActionView]:
    """``conversation`` is ``platform:chat[:thread]``."""
    key = None
    if conversation:
        platform, _, rest = conversation.partition(":")
        chat, _, thread = rest.partition(":")
        key = ConversationKey(platform=platform, chat=chat, thread=thread or None)
    stored = await runtime.approvals.list_actions(
        statuses=status or [], levels=level or [], conversation=key, limit=limit
    )
    return [action_view(s) for s in stored]
