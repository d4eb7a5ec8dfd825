"""The orchestrator and what it is built from, kept in step with the config in force.

Tools and the injection screen are rebuilt when their sections change; a tool set that
fails to build (a broken schema) keeps the previous one and says so in the log. The
approval policy is read from ``[security]`` on every decision, so approvers and the
auto-approve level apply from the next click.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpx

from core.approvals import ApprovalPolicy, ApprovalService
from core.budgets import BudgetGuard
from core.config import GatewayConfig
from core.conversations import Conversations
from core.orchestration_parts import OrchestrationParts
from core.orchestrator import Orchestrator
from core.providers.manager import ProviderManager
from core.security.audit import AuditLog
from core.security.injection import InjectionSettings, PromptInjectionDefender
from core.storage import Database
from core.storage.action_repo import ActionRepository
from core.storage.conversation_repo import ConversationRepository
from core.storage.inbox_repo import InboxRepository
from core.storage.notes_repo import NotesRepository
from core.storage.shared_locks import SharedLocks
from core.storage.usage_repo import UsageRepository
from core.tools import ToolRegistry, build_tools

if TYPE_CHECKING:
    from gateway.config_loader import LoadedConfig

log = logging.getLogger("switchboard.assistant")

# http_get gets its own client: no proxy settings from the environment (an allowlisted
# host must not be fetched through whatever HTTP_PROXY says) and httpx's own transport,
# which the tool needs to pin connections to the checked address (see core/tools/http_get).
_HTTP_GET_LIMITS = httpx.Limits(max_connections=20, max_keepalive_connections=5)


def _defender_for(config: GatewayConfig) -> PromptInjectionDefender:
    return PromptInjectionDefender(InjectionSettings.from_section(config.security.injection))


class Assistant:
    """Owns the orchestrator, the approval service, the tools and the screen."""

    def __init__(
        self,
        *,
        config: Callable[[], GatewayConfig],
        db: Database,
        manager: Callable[[], ProviderManager],
        audit: AuditLog,
        replica_id: str | None = None,
        shared_locks: SharedLocks | None = None,
    ) -> None:
        self._config = config
        self.http_client = httpx.AsyncClient(
            trust_env=False, follow_redirects=False, limits=_HTTP_GET_LIMITS
        )
        self.notes = NotesRepository(db)
        self.conversations = ConversationRepository(db)
        self.tools: ToolRegistry = self._build_tools(config())
        self.defender = _defender_for(config())
        self.approvals = ApprovalService(
            ActionRepository(db, owner=replica_id),
            policy=lambda: ApprovalPolicy.from_section(config().security),
            audit=audit,
        )
        # Reads [budgets] on every check: a config edit applies to the next message.
        self.budgets = BudgetGuard(UsageRepository(db), settings=lambda: config().budgets)
        parts = OrchestrationParts(
            config=config,
            manager=manager,
            tools=lambda: self.tools,
            defender=lambda: self.defender,
            approvals=self.approvals,
            conversations=Conversations(self.conversations),
            inbox=InboxRepository(db, owner=replica_id),
            audit=audit,
            budgets=self.budgets,
            shared_locks=shared_locks,
        )
        self.orchestrator = Orchestrator(parts)

    def _build_tools(self, config: GatewayConfig) -> ToolRegistry:
        return build_tools(config.tools, notes=self.notes, http_client=self.http_client)

    async def on_config_change(self, old: LoadedConfig, new: LoadedConfig) -> None:
        """Rebuild the tools and the screen when their sections changed."""
        if old.config.tools != new.config.tools:
            try:
                self.tools = self._build_tools(new.config)
            except ValueError as exc:
                log.error("event=tools_not_rebuilt problem=%r detail='previous tools stay'", exc)
            else:
                log.info("event=tools_rebuilt tools=%s", ",".join(self.tools.names) or "none")
        if old.config.security.injection != new.config.security.injection:
            self.defender = _defender_for(new.config)

    async def close(self) -> None:
        """Close the http_get client."""
        await self.http_client.aclose()
