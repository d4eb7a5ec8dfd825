"""The operator's admin changes as actions: persisted with a level, then finished.

``async with operator_action(approvals, ...)`` records the change as an ADMIN action that
is running while the block runs, and finishes it as succeeded, or as failed with the
error's message when the block raises. The payload names what changes, never a secret.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from core.approvals import ApprovalService
from core.errors import SwitchboardError
from core.types import SecurityLevel


@asynccontextmanager
async def operator_action(
    approvals: ApprovalService,
    change: str,
    *,
    level: SecurityLevel,
    actor: str,
    details: Mapping[str, Any],
) -> AsyncIterator[str]:
    """Yields the action id; the block is the change itself."""
    action_id = await approvals.begin_operator_action(
        level=level, payload={"change": change, **details}, actor=actor
    )
    try:
        yield action_id
    except SwitchboardError as exc:
        await approvals.finish(action_id, error=exc.message)
        raise
    except BaseException:
        await approvals.finish(action_id, error="interrupted by an unexpected error")
        raise
    await approvals.finish(action_id, result=change)
