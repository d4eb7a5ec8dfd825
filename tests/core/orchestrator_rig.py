"""A real orchestrator over a real database, talking to the OpenAI loopback fake.

The provider is the real ``openai`` provider module; the fake model's answers are queued on
``rig.script``. Tools are a recording ``deploy`` tool (level configurable) plus the
built-in ``current_time``; the audit log is the real hash-chained one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from core.approvals import ApprovalPolicy, ApprovalService
from core.config import GatewayConfig
from core.conversations import Conversations
from core.orchestration_parts import OrchestrationParts
from core.orchestrator import Orchestrator
from core.policy import RateLimiter
from core.providers.base import ProviderOptions
from core.providers.manager import ProviderManager, ProviderSpec, RoutingPolicy
from core.security.audit import AuditLog
from core.security.injection import InjectionSettings, PromptInjectionDefender
from core.storage import Database
from core.storage.action_repo import ActionRepository
from core.storage.audit_repo import AuditRepository
from core.storage.conversation_repo import ConversationRepository
from core.storage.inbox_repo import InboxRepository
from core.tools import CurrentTime, ToolRegistry
from core.types import (
    Approval,
    ConversationKey,
    InboundMessage,
    SecurityLevel,
    Sender,
    ToolContext,
    TurnResult,
)
from tests.fakes.llm_script import Script
from tests.fakes.openai_api import make_app
from tests.fakes.server import serve_app

APPROVER = "telegram:7"
USER = "telegram:42"


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Monotonic:
    """A monotonic clock for the rate limiter."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class DeployTool:
    """A tool with a side effect the test can count."""

    level: SecurityLevel = SecurityLevel.HIGH
    name: str = "deploy"
    description: str = "Deploy a service to an environment."
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {
            "type": "object",
            "properties": {"service": {"type": "string"}, "env": {"type": "string"}},
            "required": ["service"],
            "additionalProperties": False,
        }
    )
    runs: list[dict[str, Any]] = field(default_factory=list)
    output: str = "deployed"

    async def run(self, arguments: Mapping[str, Any], *, context: ToolContext) -> str:
        self.runs.append(dict(arguments))
        return f"{self.output} {arguments['service']}"


class Sink:
    """Records what the orchestrator delivers after an approval."""

    def __init__(self) -> None:
        self.delivered: list[TurnResult] = []
        self.closed: list[tuple[str, str, str | None]] = []

    async def deliver(self, result: TurnResult, *, answers: InboundMessage | None = None) -> None:
        self.delivered.append(result)

    async def approval_closed(self, approval: Approval, conversation: ConversationKey) -> None:
        self.closed.append((approval.id, approval.status.value, approval.decided_by))


@dataclass
class Rig:
    db: Database
    script: Script
    manager: ProviderManager
    config: GatewayConfig
    clock: Clock
    monotonic: Monotonic
    deploy: DeployTool
    audit: AuditLog
    sink: Sink
    orchestrator: Orchestrator
    approvals: ApprovalService
    conversations: ConversationRepository
    counter: int = 0

    def set_config(self, **sections: Any) -> None:
        """Replace config sections (as TOML-shaped dicts); applies to the next message."""
        data = self.config.model_dump(mode="python", exclude_none=True)
        for name, value in sections.items():
            data[name] = value
        self.config = GatewayConfig.model_validate(data)

    def message(
        self,
        text: str,
        *,
        user: str = "42",
        chat: str = "42",
        platform: str = "telegram",
        message_id: str | None = None,
        is_bot: bool = False,
    ) -> InboundMessage:
        self.counter += 1
        return InboundMessage(
            platform=platform,
            message_id=message_id or f"m{self.counter}",
            conversation=ConversationKey(platform=platform, chat=chat),
            sender=Sender(platform=platform, user_id=user, is_bot=is_bot),
            text=text,
            is_direct=True,
        )

    async def say(self, text: str, **kwargs: Any) -> TurnResult:
        return await self.orchestrator.handle(self.message(text, **kwargs))

    def restart(self) -> Orchestrator:
        """A new orchestrator over the same database, as after a process restart."""
        self.orchestrator = build_orchestrator(self)
        self.orchestrator.register_sink("telegram", self.sink)
        return self.orchestrator


def build_orchestrator(rig: Rig) -> Orchestrator:
    registry = ToolRegistry()
    registry.register(rig.deploy)
    registry.register(CurrentTime(clock=rig.clock))
    defenders: dict[str, PromptInjectionDefender] = {}

    def defender() -> PromptInjectionDefender:
        # Rebuilt when [security.injection] changes, like the gateway's wiring does.
        section = rig.config.security.injection
        cache_key = section.model_dump_json()
        if cache_key not in defenders:
            defenders[cache_key] = PromptInjectionDefender(InjectionSettings.from_section(section))
        return defenders[cache_key]

    rig.approvals = ApprovalService(
        ActionRepository(rig.db),
        policy=lambda: ApprovalPolicy.from_section(rig.config.security),
        audit=rig.audit,
        clock=rig.clock,
    )
    parts = OrchestrationParts(
        config=lambda: rig.config,
        manager=lambda: rig.manager,
        tools=lambda: registry,
        defender=defender,
        approvals=rig.approvals,
        conversations=Conversations(rig.conversations),
        inbox=InboxRepository(rig.db),
        audit=rig.audit,
        clock=rig.clock,
    )
    return Orchestrator(parts, limiter=RateLimiter(monotonic=rig.monotonic))


BASE_CONFIG: dict[str, Any] = {
    "security": {"auto_approve": "low", "approvers": [APPROVER], "approval_timeout_s": 600},
    "access": {"rate_per_minute": 600, "burst": 100},
}


@asynccontextmanager
async def running_rig(db: Database, *, config: dict[str, Any] | None = None) -> AsyncIterator[Rig]:
    script = Script()
    async with serve_app(make_app(script)) as url:
        manager = ProviderManager()
        options = ProviderOptions(
            name="main",
            type_name="openai",
            base_url=f"{url}/v1",
            api_key="test-key",
            default_model="fake-small",
            timeout=httpx.Timeout(5.0),
        )
        await manager.apply(
            [ProviderSpec(options=options, max_retries=0, timeout_s=5.0)],
            policy=RoutingPolicy(),
            default="main",
        )
        clock = Clock()
        audit = AuditLog(AuditRepository(db), clock=clock)
        rig = Rig(
            db=db,
            script=script,
            manager=manager,
            config=GatewayConfig.model_validate(config or BASE_CONFIG),
            clock=clock,
            monotonic=Monotonic(),
            deploy=DeployTool(),
            audit=audit,
            sink=Sink(),
            orchestrator=None,  # type: ignore[arg-type]
            approvals=None,  # type: ignore[arg-type]
            conversations=ConversationRepository(db),
        )
        rig.restart()
        try:
            yield rig
        finally:
            await manager.close()
