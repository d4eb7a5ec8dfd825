"""An operator's decision on an approval, acted on at once: what the API and the console do."""

from __future__ import annotations

from core.types import Approval
from gateway.runtime import Runtime


async def decide_and_settle(
    runtime: Runtime, approval_id: str, *, approve: bool, decider: str
) -> Approval:
    """Record the decision, then run (or not) the call and resume its turn in this process.

    Raises ``NotFound``, ``PermissionDenied`` or ``ApprovalConflict`` (already decided or
    expired) from the decision; nothing has changed when it raises.
    """
    approval = await runtime.approvals.decide(approval_id, approve=approve, decider=decider)
    # Run it here and now (this process has the channels to answer in); the sweeper would
    # otherwise pick it up within a second.
    await runtime.orchestrator.settle(approval)
    return approval
