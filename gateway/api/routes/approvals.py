"""``/api/approvals`` and ``/api/actions``: operator decisions and the action ledger."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict

from core.errors import NotFound
from core.storage.action_repo import StoredAction
from core.storage.paging import PagePosition
from core.types import ActionStatus, Approval, ApprovalStatus, SecurityLevel
from gateway.api.conversation_key import KEY_EXAMPLES, KEY_PATTERN, parse_conversation_key
from gateway.api.deps import RuntimeDep
from gateway.api.openapi_docs import error_responses
from gateway.api.paging import (
    PAGED_HEADERS,
    PAGING_DESCRIPTION,
    Cursor,
    Limit,
    announce_next_page,
    decode_time_cursor,
    split_page,
    time_cursor,
)
from gateway.decisions import decide_and_settle
from gateway.runtime import Runtime

router = APIRouter(prefix="/api", tags=["approvals"])
API_OPERATOR = "operator:api"


class ApprovalView(BaseModel):
    """An approval with the action it would run."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "Xy12AbCdEf34",
                    "action_id": "5f0c9a3e8b2d4c61a7e9f0b1c2d3e4f5",
                    "status": "pending",
                    "level": "critical",
                    "tool": "shell",
                    "arguments": {"command": "df -h"},
                    "requested_by": "telegram:123456",
                    "decided_by": None,
                    "created_at": "2026-11-24T17:02:41.554000Z",
                    "expires_at": "2026-11-24T17:12:41.554000Z",
                    "decided_at": None,
                }
            ]
        }
    )

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

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "5f0c9a3e8b2d4c61a7e9f0b1c2d3e4f5",
                    "kind": "tool_call",
                    "level": "low",
                    "status": "succeeded",
                    "conversation": "telegram:123456",
                    "requester": "telegram:123456",
                    "payload": {"tool": "current_time", "arguments": {}},
                    "result": "2026-11-24T17:02:42Z",
                    "error": None,
                    "created_at": "2026-11-24T17:02:41.554000Z",
                    "updated_at": "2026-11-24T17:02:42.001000Z",
                }
            ]
        }
    )

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
_NO_APPROVAL = {404: "no approval with that id (`not_found`)"}
_DECIDED = {409: "already decided or expired (`already_decided`); nothing more runs"}


@router.get(
    "/approvals",
    summary="Approvals, pending ones by default",
    description="Newest first. `status` is `pending` (default), `approved`, `rejected`, "
    "`expired` or `all`." + PAGING_DESCRIPTION,
    responses={
        200: {"headers": PAGED_HEADERS},
        **error_responses({422: "a bad filter, limit or cursor"}),
    },
)
async def list_approvals(
    request: Request,
    response: Response,
    runtime: RuntimeDep,
    status: StatusFilter = "pending",
    limit: Limit = 100,
    cursor: Cursor = None,
) -> list[ApprovalView]:
    """Newest first; ``status=all`` for every state."""
    statuses = [] if status == "all" else [ApprovalStatus(status)]
    after = decode_time_cursor(cursor, "approvals")
    found = await runtime.approvals.list_approvals(statuses, limit=limit + 1, after=after)
    approvals, more = split_page(found, limit)
    if more:
        last = PagePosition(at=approvals[-1].created_at, id=approvals[-1].id)
        announce_next_page(request, response, time_cursor("approvals", last))
    actions = await runtime.approvals.actions_of(approvals)
    return [approval_view(a, actions.get(a.action_id)) for a in approvals]


@router.get(
    "/approvals/{approval_id}",
    summary="One approval",
    description="The approval with the tool call it is bound to, in any state.",
    responses=error_responses(_NO_APPROVAL),
)
async def get_approval(approval_id: str, runtime: RuntimeDep) -> ApprovalView:
    """404 when unknown."""
    approval = await runtime.approvals.get_approval(approval_id)
    return approval_view(approval, await runtime.approvals.get_action(approval.action_id))


async def _decide(approval_id: str, runtime: Runtime, *, approve: bool) -> ApprovalView:
    approval = await decide_and_settle(runtime, approval_id, approve=approve, decider=API_OPERATOR)
    return approval_view(approval, await runtime.approvals.get_action(approval.action_id))


@router.post(
    "/approvals/{approval_id}/approve",
    summary="Approve (as the operator)",
    description="Decides a pending approval as `operator:api` and runs the tool call at once "
    "(exactly once, whoever else clicks); the turn it belongs to resumes and its answer goes "
    "to the chat the request came from. Answers the approval as decided.",
    responses=error_responses({**_NO_APPROVAL, **_DECIDED}),
)
async def approve(approval_id: str, runtime: RuntimeDep) -> ApprovalView:
    """Runs the action once; a decided approval answers 409 ``already_decided``."""
    return await _decide(approval_id, runtime, approve=True)


@router.post(
    "/approvals/{approval_id}/reject",
    summary="Reject (as the operator)",
    description="Decides a pending approval as `operator:api`; nothing runs, the model is "
    "told the call was rejected. Answers the approval as decided.",
    responses=error_responses({**_NO_APPROVAL, **_DECIDED}),
)
async def reject(approval_id: str, runtime: RuntimeDep) -> ApprovalView:
    """Nothing runs; a decided approval answers 409 ``already_decided``."""
    return await _decide(approval_id, runtime, approve=False)


@router.get(
    "/actions",
    summary="Actions, newest first, filterable",
    description="The action ledger: chat turns, tool calls and the operator's admin changes, "
    "each with its security level and state. Filters combine with AND; `status` and `level` "
    "may be repeated (`?status=failed&status=rejected`) and match any of their values; "
    "`conversation` is `platform:chat[:thread]`." + PAGING_DESCRIPTION,
    responses={
        200: {"headers": PAGED_HEADERS},
        **error_responses({422: "a bad filter, conversation key, limit or cursor"}),
    },
)
async def list_actions(
    request: Request,
    response: Response,
    runtime: RuntimeDep,
    status: Annotated[list[ActionStatus] | None, Query(description="any of these states")] = None,
    level: Annotated[list[SecurityLevel] | None, Query(description="any of these levels")] = None,
    conversation: Annotated[
        str | None,
        Query(
            description="only this conversation's actions",
            examples=KEY_EXAMPLES[:1],
            # Empty means no filter, as for a missing parameter.
            json_schema_extra={"pattern": f"^$|{KEY_PATTERN}", "maxLength": 512},
        ),
    ] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> list[ActionView]:
    """``conversation`` is ``platform:chat[:thread]``."""
    key = parse_conversation_key(conversation, field="conversation") if conversation else None
    after = decode_time_cursor(cursor, "actions")
    found = await runtime.approvals.list_actions(
        statuses=status or [], levels=level or [], conversation=key, limit=limit + 1, after=after
    )
    stored, more = split_page(found, limit)
    if more:
        last = stored[-1].action
        announce_next_page(
            request, response, time_cursor("actions", PagePosition(last.created_at, last.id))
        )
    return [action_view(s) for s in stored]


@router.get(
    "/actions/{action_id}",
    summary="One action",
    description="One action of the ledger with its payload, result and error.",
    responses=error_responses({404: "no action with that id (`action_not_found`)"}),
)
async def get_action(action_id: str, runtime: RuntimeDep) -> ActionView:
    """404 ``action_not_found`` when unknown."""
    try:
        stored = await runtime.approvals.get_action(action_id)
    except NotFound as exc:
        raise NotFound(exc.message, code="action_not_found") from None
    return action_view(stored)
