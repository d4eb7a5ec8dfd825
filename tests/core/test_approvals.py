"""Approvals as a durable state machine, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from core.approvals import INTERRUPTED, ApprovalPolicy, ApprovalService, payload_digest
from core.errors import ApprovalConflict, NotFound, PermissionDenied
from core.storage import Database
from core.storage.action_repo import ActionRepository
from core.types import ActionKind, ActionStatus, ApprovalStatus, ConversationKey, SecurityLevel

CHAT = ConversationKey(platform="telegram", chat="42")
APPROVERS = frozenset({"telegram:1", "slack:U2"})


class Recorder:
    """Collects audit appends (the real AuditLog is tested on its own)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str | None, dict[str, Any]]] = []

    async def append(
        self,
        kind: str,
        *,
        actor: str | None = None,
        conversation: str | None = None,
        action_id: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        self.records.append((kind, actor, dict(data or {})))


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def service(migrated_db: Database) -> AsyncIterator[tuple[ApprovalService, Recorder, Clock]]:
    audit, clock = Recorder(), Clock()
    policy = ApprovalPolicy(auto_approve=SecurityLevel.LOW, approvers=APPROVERS, timeout_s=600)
    yield (
        ApprovalService(
            ActionRepository(migrated_db), policy=lambda: policy, audit=audit, clock=clock
        ),
        audit,
        clock,
    )


async def shell(service: ApprovalService, argv: list[str], requester: str = "telegram:9") -> Any:
    return await service.request(
        kind=ActionKind.TOOL_CALL,
        level=SecurityLevel.CRITICAL,
        payload={
            "tool": "shell",
            "arguments": {"argv": argv},
            "conversation": str(CHAT),
            "requester": requester,
        },
        conversation=CHAT,
        requester=requester,
    )


async def test_low_actions_run_at_once_others_wait(
    service: tuple[ApprovalService, Recorder, Clock],
) -> None:
    svc, audit, _ = service
    low = await svc.request(
        kind=ActionKind.TOOL_CALL,
        level=SecurityLevel.LOW,
        payload={"tool": "current_time", "arguments": {}},
        conversation=CHAT,
        requester="telegram:9",
    )
    assert low.approval is None and low.action.status is ActionStatus.APPROVED
    assert await svc.claim(low.action.id) is not None
    high = await shell(svc, ["ls"])
    assert high.approval is not None and high.action.status is ActionStatus.PENDING_APPROVAL
    assert await svc.claim(high.action.id) is None  # nothing runs before a decision
    assert [r[0] for r in audit.records].count("action.requested") == 2


async def test_only_approvers_decide_and_never_the_requester_of_a_critical_action(
    service: tuple[ApprovalService, Recorder, Clock],
) -> None:
    svc, audit, _ = service
    requested = await shell(svc, ["uptime"], requester="telegram:1")
    assert requested.approval is not None
    with pytest.raises(PermissionDenied, match="not an approver"):
        await svc.decide(requested.approval.id, approve=True, decider="telegram:666")
    with pytest.raises(PermissionDenied, match="other than its requester"):
        await svc.decide(requested.approval.id, approve=True, decider="telegram:1")
    approved = await svc.decide(requested.approval.id, approve=True, decider="slack:U2")
    assert (approved.status, approved.decided_by) == (ApprovalStatus.APPROVED, "slack:U2")
    clicks = [r for r in audit.records if r[0] == "approval.click"]
    assert [c[2]["outcome"] for c in clicks][:2] == [
        "refused: telegram:666 is not an approver (see [security] approvers)",
        "refused: a critical action needs an approver other than its requester",
    ]


async def test_a_decided_approval_answers_already_decided(
    service: tuple[ApprovalService, Recorder, Clock],
) -> None:
    svc, _, _ = service
    requested = await shell(svc, ["df"])
    assert requested.approval is not None
    await svc.decide(requested.approval.id, approve=False, decider="operator:cli")
    with pytest.raises(ApprovalConflict, match="already decided: rejected by operator:cli"):
        await svc.decide(requested.approval.id, approve=True, decider="telegram:1")
    assert (await svc.get_action(requested.action.id)).action.status is ActionStatus.REJECTED
    with pytest.raises(NotFound):
        await svc.decide("nope", approve=True, decider="telegram:1")


@pytest.mark.slow
async def test_a_thousand_concurrent_decisions_run_the_action_once(
    service: tuple[ApprovalService, Recorder, Clock],
) -> None:
    svc, _, _ = service
    requested = await shell(svc, ["ls"])
    assert requested.approval is not None
    approval_id = requested.approval.id

    async def click(i: int) -> bool:
        try:
            await svc.decide(approval_id, approve=i % 3 != 0, decider=sorted(APPROVERS)[i % 2])
        except ApprovalConflict:
            return False
        return True

    outcomes = await asyncio.gather(*(click(i) for i in range(1000)))
    assert outcomes.count(True) == 1
    claims = await asyncio.gather(*(svc.claim(requested.action.id) for _ in range(1000)))
    ran = [c for c in claims if c is not None]
    final = await svc.get_approval(approval_id)
    assert len(ran) == (1 if final.status is ApprovalStatus.APPROVED else 0)


async def test_an_approval_never_runs_anything_else(
    service: tuple[ApprovalService, Recorder, Clock], migrated_db: Database
) -> None:
    svc, _, _ = service
    requested = await shell(svc, ["ls"])
    assert requested.approval is not None
    await svc.decide(requested.approval.id, approve=True, decider="telegram:1")
    tampered = (
        '{"arguments":{"argv":["rm","-rf","/"]},"conversation":"telegram:42",'
        '"requester":"telegram:9","tool":"shell"}'
    )
    async with migrated_db.transaction() as session:
        await session.execute(
            text("UPDATE actions SET payload = :p WHERE id = :i"),
            {"p": tampered, "i": requested.action.id},
        )
    assert await svc.claim(requested.action.id) is None
    stored = await svc.get_action(requested.action.id)
    assert stored.action.status is ActionStatus.FAILED
    assert stored.error == "the payload does not match what was approved"


async def test_an_undecided_approval_expires_as_rejected(
    service: tuple[ApprovalService, Recorder, Clock],
) -> None:
    svc, audit, clock = service
    requested = await shell(svc, ["ls"])
    assert requested.approval is not None
    clock.now += timedelta(seconds=601)
    with pytest.raises(ApprovalConflict, match="expired"):
        await svc.decide(requested.approval.id, approve=True, decider="telegram:1")
    assert (await svc.get_approval(requested.approval.id)).status is ApprovalStatus.EXPIRED
    assert (await svc.get_action(requested.action.id)).action.status is ActionStatus.EXPIRED
    second = await shell(svc, ["df"])
    clock.now += timedelta(seconds=601)
    assert [a.id for a in await svc.expire_due()] == [second.approval.id]  # type: ignore[union-attr]
    assert any(r[0] == "approval.expired" for r in audit.records)


async def test_an_action_interrupted_while_running_is_never_run_again(
    service: tuple[ApprovalService, Recorder, Clock],
) -> None:
    svc, _, _ = service
    requested = await shell(svc, ["ls"])
    assert requested.approval is not None
    await svc.decide(requested.approval.id, approve=True, decider="telegram:1")
    assert await svc.claim(requested.action.id) is not None
    # the process dies here; the next one starts:
    assert await svc.recover_interrupted() == [requested.action.id]
    stored = await svc.get_action(requested.action.id)
    assert (stored.action.status, stored.error) == (ActionStatus.FAILED, INTERRUPTED)
    assert await svc.claim(requested.action.id) is None


async def test_pending_approvals_survive_a_new_service(
    service: tuple[ApprovalService, Recorder, Clock], migrated_db: Database
) -> None:
    svc, audit, clock = service
    requested = await shell(svc, ["ls"])
    assert requested.approval is not None
    fresh = ApprovalService(
        ActionRepository(migrated_db),
        policy=lambda: ApprovalPolicy(approvers=APPROVERS),
        audit=audit,
        clock=clock,
    )
    pending = await fresh.list_approvals([ApprovalStatus.PENDING])
    assert [a.id for a in pending] == [requested.approval.id]
    await fresh.decide(requested.approval.id, approve=True, decider="telegram:1")
    assert await fresh.claim(requested.action.id) is not None


EVENTS = st.lists(
    st.one_of(
        st.tuples(st.just("request"), st.sampled_from(list(SecurityLevel))),
        st.tuples(
            st.just("decide"),
            st.integers(0, 20),
            st.booleans(),
            st.sampled_from(["telegram:1", "telegram:666", "telegram:9", "operator:api"]),
        ),
        st.tuples(st.just("claim"), st.integers(0, 20)),
        st.tuples(st.just("tamper"), st.integers(0, 20)),
        st.tuples(st.just("advance"), st.integers(0, 900)),
        st.tuples(st.just("expire")),
    ),
    max_size=25,
)


@pytest.mark.slow
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(events=EVENTS)
async def test_nothing_above_the_threshold_runs_without_a_matching_approval(
    tmp_path_factory: pytest.TempPathFactory, events: list[tuple[Any, ...]]
) -> None:
    from gateway.schema import upgrade_to_head

    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('prop') / 'db.sqlite'}"
    await upgrade_to_head(url)
    db = Database.open(url)
    clock = Clock()
    policy = ApprovalPolicy(
        auto_approve=SecurityLevel.MEDIUM, approvers=frozenset({"telegram:1"}), timeout_s=600
    )
    svc = ApprovalService(
        ActionRepository(db), policy=lambda: policy, audit=Recorder(), clock=clock
    )
    actions: list[str] = []
    ran: list[str] = []
    ran_digests: dict[str, str] = {}
    try:
        for event in events:
            match event:
                case ("request", level):
                    requested = await svc.request(
                        kind=ActionKind.TOOL_CALL,
                        level=level,
                        payload={"tool": "t", "arguments": {"n": len(actions)}},
                        conversation=CHAT,
                        requester="telegram:9",
                    )
                    actions.append(requested.action.id)
                case ("decide", index, approve, who) if actions:
                    approval = await ActionRepository(db).approval_for_action(
                        actions[index % len(actions)]
                    )
                    if approval is not None:
                        try:
                            await svc.decide(approval.id, approve=approve, decider=who)
                        except (ApprovalConflict, PermissionDenied):
                            pass
                case ("claim", index) if actions:
                    claimed = await svc.claim(actions[index % len(actions)])
                    if claimed is not None:
                        ran.append(claimed.action.id)
                        ran_digests[claimed.action.id] = payload_digest(claimed.action.payload)[1]
                case ("tamper", index) if actions:
                    async with db.transaction() as session:
                        await session.execute(
                            text("UPDATE actions SET payload = :p WHERE id = :i"),
                            {
                                "p": '{"arguments":{"n":-1},"tool":"t"}',
                                "i": actions[index % len(actions)],
                            },
                        )
                case ("advance", seconds):
                    clock.now += timedelta(seconds=seconds)
                case ("expire",):
                    await svc.expire_due()
        assert len(ran) == len(set(ran)), "an action ran twice"
        repo = ActionRepository(db)
        for action_id in ran:
            stored = await repo.get_action(action_id)
            assert stored is not None
            if stored.action.level.at_most(SecurityLevel.MEDIUM):
                continue
            approval = await repo.approval_for_action(action_id)
            assert approval is not None and approval.status is ApprovalStatus.APPROVED
            assert approval.decided_by in {"telegram:1", "operator:api"}
            assert approval.payload_sha256 == ran_digests[action_id]  # what ran was approved
    finally:
        await db.close()
