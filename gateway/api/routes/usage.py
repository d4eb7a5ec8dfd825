"""``GET /api/usage``: tokens and provider calls per user and conversation, against budgets."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Query

from core.errors import SwitchboardError
from gateway.api.deps import RuntimeDep
from gateway.usage_views import UsageView, usage_view

router = APIRouter(prefix="/api", tags=["usage"])
# A platform, a colon, something: a filter is an exact match, so this only catches the
# usual mistake (``alice`` for ``api:alice``). Kept simple so that Python's ``re`` and
# the JSON-schema (ECMA) reading of the documented pattern agree.
_USER_FORM = r"^[a-z][a-z0-9_]*:."
_CONVERSATION_FORM = _USER_FORM
_USER = re.compile(_USER_FORM)
_CONVERSATION = re.compile(_CONVERSATION_FORM)

EXAMPLE = {
    "now": "2026-12-09T21:48:00+00:00",
    "day": "2026-12-09",
    "month": "2026-12",
    "day_resets_at": "2026-12-10T00:00:00+00:00",
    "month_resets_at": "2027-01-01T00:00:00+00:00",
    "users": [
        {
            "user": "api:alice",
            "today": {
                "input_tokens": 800,
                "output_tokens": 400,
                "total_tokens": 1200,
                "requests": 3,
            },
            "month": {
                "input_tokens": 9000,
                "output_tokens": 3000,
                "total_tokens": 12000,
                "requests": 41,
            },
            # (FastAPI drops nulls from the document's examples: every limit is set here.)
            "limits": {"tokens_per_day": 1000, "tokens_per_month": 20000, "requests_per_day": 100},
            "remaining": {"tokens_per_day": 0, "tokens_per_month": 8000, "requests_per_day": 97},
            "exhausted": True,
        }
    ],
    "conversations": [],
}


class InvalidQuery(SwitchboardError):
    """A query parameter is not of the form it must have."""

    code = "invalid_request"
    http_status = 422


@router.get(
    "/usage",
    summary="Usage today and this month, the limits in force and what is left",
    responses={
        200: {"content": {"application/json": {"example": EXAMPLE}}},
        422: {"description": "`user` or `conversation` is not of the documented form"},
    },
)
async def get_usage(
    runtime: RuntimeDep,
    user: Annotated[
        str | None,
        Query(
            max_length=256,
            description="an identity `platform:user_id`, e.g. `api:alice`",
            # Documented here, checked below: a mismatch gets a message naming the form.
            json_schema_extra={"pattern": _USER_FORM},
        ),
    ] = None,
    conversation: Annotated[
        str | None,
        Query(
            max_length=512,
            description="`platform:chat[:thread]`, e.g. `telegram:-1001234`",
            json_schema_extra={"pattern": _CONVERSATION_FORM},
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="top entries without a filter")] = 10,
) -> UsageView:
    """With ``user`` and/or ``conversation``: those; with neither: the top users and
    conversations of the current UTC month by tokens. Windows are calendar UTC days and
    months; a limit of null is no limit."""
    if user is not None and not _USER.match(user):
        raise InvalidQuery(
            f"user: {user!r} is not an identity of the form platform:user_id "
            "(for example api:alice or telegram:123456)"
        )
    if conversation is not None and not _CONVERSATION.match(conversation):
        raise InvalidQuery(
            f"conversation: {conversation!r} is not of the form platform:chat[:thread] "
            "(for example api:alice or telegram:-1001234)"
        )
    report = await runtime.assistant.budgets.report(user=user, conversation=conversation, top=limit)
    return usage_view(report)
