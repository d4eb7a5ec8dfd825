"""What the orchestrator is built from: every collaborator, injected.

Collaborators that change with a config edit (the config itself, the provider manager,
the tool registry, the injection screen) are passed as callables and read at the start
of each step, so a hot reload applies to the next message without rebuilding anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from core.approvals import ApprovalService
from core.budgets import BudgetGuard
from core.config import GatewayConfig
from core.conversations import Conversations
from core.ports import AuditSink
from core.providers.manager import ProviderManager
from core.security.injection import PromptInjectionDefender
from core.storage.inbox_repo import InboxRepository
from core.storage.shared_locks import SharedLocks
from core.tools.registry import ToolRegistry

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The default clock."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class OrchestrationParts:
    """The object graph under the orchestrator (``gateway/wiring`` builds it)."""

    config: Callable[[], GatewayConfig]
    manager: Callable[[], ProviderManager]
    tools: Callable[[], ToolRegistry]
    defender: Callable[[], PromptInjectionDefender]
    approvals: ApprovalService
    conversations: Conversations
    inbox: InboxRepository
    audit: AuditSink
    clock: Clock = utc_now
    # Token budgets and request limits; None: nothing is counted or enforced.
    budgets: BudgetGuard | None = None
    # Locks across replicas (PostgreSQL); None: this process is the only one.
    shared_locks: SharedLocks | None = None
