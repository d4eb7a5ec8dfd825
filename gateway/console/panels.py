"""What each console panel shows, read from the runtime: one async function per panel.

Each returns the template context of its panel; templates render it (autoescaped: tool
arguments and audit data come from the model and from users).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from core.security.audit import AuditLog, AuditVerdict, record_json
from core.types import ApprovalStatus
from gateway.api.routes.approvals import action_view, approval_view
from gateway.provider_views import provider_views
from gateway.runtime import Runtime

RECENT_ACTIONS = 20
RECENT_AUDIT = 20
RECENT_DECISIONS = 5
PENDING_SHOWN = 50


@dataclass(frozen=True, slots=True)
class CheckedChain:
    """An audit chain verdict, the newest ``seq`` it covered and when it was computed."""

    verdict: AuditVerdict
    head_seq: int
    checked_at: datetime


class AuditCheck:
    """The chain check behind the audit panel, shared by every open console.

    ``AuditLog.verify`` reads the whole chain; polled every 2 s by every open tab that
    would be the gateway's biggest database load. It is recomputed only when the chain
    grew, or when the last verdict is older than ``max_age_s`` (records edited in place
    show up within that time), and concurrent panels wait for one scan.
    """

    def __init__(
        self,
        *,
        max_age_s: float = 10.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._max_age = timedelta(seconds=max_age_s)
        self._clock = clock
        self._lock = asyncio.Lock()
        self._last: CheckedChain | None = None

    async def check(self, audit: AuditLog) -> CheckedChain:
        """The current verdict (recomputed if stale)."""
        head = await audit.head()
        head_seq = head.seq if head is not None else 0
        async with self._lock:
            last = self._last
            if (
                last is not None
                and last.head_seq == head_seq
                and self._clock() - last.checked_at < self._max_age
            ):
                return last
            verdict = await audit.verify()
            self._last = CheckedChain(verdict=verdict, head_seq=head_seq, checked_at=self._clock())
            return self._last


async def providers_panel(runtime: Runtime, _: AuditCheck) -> dict[str, Any]:
    """Every provider with its health probe (cached up to 10 s by the manager)."""
    health = await runtime.manager.health()
    rows = []
    for view in await provider_views(runtime.providers, probe=False):
        status = health.get(view["name"])
        rows.append(
            {
                **view,
                "healthy": status.healthy if status else view["healthy"],
                "latency_ms": status.latency_ms if status else None,
                "error": status.error if status else None,
            }
        )
    return {"providers": rows}


async def channels_panel(runtime: Runtime, _: AuditCheck) -> dict[str, Any]:
    """Each running chat platform's connection state."""
    channels = []
    for name, status in sorted(runtime.channel_status().items()):
        known = {
            "name",
            "state",
            "connected",
            "since",
            "consecutive_failures",
            "last_error",
            "sent",
        }
        extra = {k: v for k, v in status.items() if k not in known}
        channels.append(
            {
                "name": name,
                "state": status.get("state"),
                "connected": status.get("connected"),
                "since": status.get("since"),
                "failures": status.get("consecutive_failures"),
                "last_error": status.get("last_error"),
                "sent": status.get("sent"),
                "extra": extra,
            }
        )
    return {"channels": channels}


async def approvals_panel(runtime: Runtime, _: AuditCheck) -> dict[str, Any]:
    """Pending approvals (oldest first: the next to expire on top), and the latest decisions."""
    service = runtime.approvals
    pending = await service.list_approvals([ApprovalStatus.PENDING], limit=PENDING_SHOWN)
    decided_states = [ApprovalStatus.APPROVED, ApprovalStatus.REJECTED, ApprovalStatus.EXPIRED]
    decided = await service.list_approvals(decided_states, limit=RECENT_DECISIONS)
    actions = await service.actions_of([*pending, *decided])
    return {
        "pending": [approval_view(a, actions.get(a.action_id)) for a in pending][::-1],
        "decided": [approval_view(a, actions.get(a.action_id)) for a in decided],
    }


async def actions_panel(runtime: Runtime, _: AuditCheck) -> dict[str, Any]:
    """The newest actions of the ledger."""
    stored = await runtime.approvals.list_actions(
        statuses=[], levels=[], conversation=None, limit=RECENT_ACTIONS
    )
    return {"actions": [action_view(s) for s in stored]}


async def audit_panel(runtime: Runtime, check: AuditCheck) -> dict[str, Any]:
    """The chain's verdict and the newest records, newest first."""
    checked = await check.check(runtime.audit)
    records = [record_json(r) for r in await runtime.audit.tail(RECENT_AUDIT)]
    return {"chain": checked, "records": records[::-1]}


PanelSource = Callable[[Runtime, AuditCheck], Awaitable[dict[str, Any]]]
PANELS: dict[str, PanelSource] = {
    "providers": providers_panel,
    "channels": channels_panel,
    "approvals": approvals_panel,
    "actions": actions_panel,
    "audit": audit_panel,
}
