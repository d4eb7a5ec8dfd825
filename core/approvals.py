"""Actions with a security level, and the human approvals the risky ones wait for.

Every action is persisted with its level and lifecycle::

    requested -> approved (auto: level <= [security] auto_approve) -> running -> succeeded | failed
    requested -> pending_approval -> approved -> running -> ...
                                  -> rejected | expired

An approval is bound to the SHA-256 of the canonical JSON of exactly what will run
(tool, arguments, conversation, requester). Before running, the stored payload is hashed
again and compared with the approval's hash, so an approval can never run anything else,
even if the database row was changed in between.

Decisions are one conditional update from ``pending`` (see ``core.storage.action_repo``):
of any number of concurrent clicks one wins, the others get ``ApprovalConflict``. Claiming
an approved action for running is conditional too, so it runs at most once; an action
found ``running`` after a crash is marked failed and never run again.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from core.canonical import canonical_json, sha256_hex
from core.config import SecuritySection
from core.errors import ApprovalConflict, NotFound, PermissionDenied
from core.log_context import log_context
from core.ports import AuditSink
from core.storage.action_repo import ActionRepository, StoredAction
from core.storage.paging import PagePosition
from core.types import (
    Action,
    ActionKind,
    ActionStatus,
    Approval,
    ApprovalStatus,
    ConversationKey,
    SecurityLevel,
)

log = logging.getLogger("switchboard.approvals")

Clock = Callable[[], datetime]
OPERATOR_PREFIX = "operator:"
INTERRUPTED = "interrupted by a restart while running; not run again (actions run at most once)"


@dataclass(frozen=True)
class ApprovalPolicy:
    """``[security]`` as the approval service needs it."""

    auto_approve: SecurityLevel = SecurityLevel.LOW
    approvers: frozenset[str] = frozenset()
    timeout_s: int = 600
    requester_may_approve_critical: bool = False

    @classmethod
    def from_section(cls, security: SecuritySection) -> ApprovalPolicy:
        """The policy ``[security]`` describes."""
        return cls(
            auto_approve=security.auto_approve,
            approvers=frozenset(security.approvers),
            timeout_s=security.approval_timeout_s,
            requester_may_approve_critical=security.requester_may_approve_critical,
        )


@dataclass(frozen=True)
class Requested:
    """A new action, and its approval when it needs one."""

    action: Action
    approval: Approval | None


def payload_digest(payload: Mapping[str, Any]) -> tuple[str, str]:
    """(canonical JSON, SHA-256 hex) of an action's payload."""
    text = canonical_json(dict(payload))
    return text, sha256_hex(text)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def new_approval_id() -> str:
    """12 URL-safe characters: short enough for Telegram's 64-byte callback data."""
    return secrets.token_urlsafe(9)


class ApprovalService:
    """Requests, decides, claims and finishes actions; every step goes to the audit log."""

    def __init__(
        self,
        repo: ActionRepository,
        *,
        policy: Callable[[], ApprovalPolicy],
        audit: AuditSink,
        clock: Clock = _utc_now,
    ) -> None:
        self._repo = repo
        self._policy = policy
        self._audit = audit
        self._clock = clock

    async def request(
        self,
        *,
        kind: ActionKind,
        level: SecurityLevel,
        payload: Mapping[str, Any],
        conversation: ConversationKey | None,
        requester: str | None,
        preapproved: bool = False,
    ) -> Requested:
        """Persist an action; above the auto-approve level it waits for an approval.

        ``preapproved`` is for the operator's own changes (CLI, admin API): the operator is
        the approver, so nothing waits, but the action is still in the ledger with its level.
        """
        policy = self._policy()
        now = self._clock()
        text, digest = payload_digest(payload)
        auto = preapproved or level.at_most(policy.auto_approve)
        action = Action(
            id=uuid.uuid4().hex,
            kind=kind,
            level=level,
            status=ActionStatus.APPROVED if auto else ActionStatus.PENDING_APPROVAL,
            conversation=conversation,
            requester=requester,
            payload=dict(payload),
            created_at=now,
            updated_at=now,
        )
        approval = None
        if not auto:
            approval = Approval(
                id=new_approval_id(),
                action_id=action.id,
                payload_sha256=digest,
                status=ApprovalStatus.PENDING,
                level=level,
                requested_by=requester,
                created_at=now,
                expires_at=now + timedelta(seconds=policy.timeout_s),
            )
        await self._repo.add(action, payload_json=text, payload_sha256=digest, approval=approval)
        await self._audit.append(
            "action.requested",
            actor=requester,
            conversation=str(conversation) if conversation else None,
            action_id=action.id,
            data={
                "kind": kind.value,
                "level": level.value,
                "payload_sha256": digest,
                "auto_approved": auto,
                "approval_id": approval.id if approval else None,
            },
        )
        return Requested(action=action, approval=approval)

    async def begin_operator_action(
        self, *, level: SecurityLevel, payload: Mapping[str, Any], actor: str
    ) -> str:
        """An admin change by the operator, persisted and running; ``finish`` it after."""
        if not actor.startswith(OPERATOR_PREFIX):
            raise PermissionDenied(f"{actor} is not the operator")
        requested = await self.request(
            kind=ActionKind.ADMIN,
            level=level,
            payload=payload,
            conversation=None,
            requester=actor,
            preapproved=True,
        )
        await self.claim(requested.action.id)
        return requested.action.id

    async def decide(self, approval_id: str, *, approve: bool, decider: str) -> Approval:
        """Record one decision; raises NotFound, PermissionDenied or ApprovalConflict."""
        approval = await self._repo.get_approval(approval_id)
        if approval is None:
            raise NotFound(f"no approval with id {approval_id!r}")
        with log_context(action_id=approval.action_id):
            return await self._decide(approval, approve=approve, decider=decider)

    async def _decide(self, approval: Approval, *, approve: bool, decider: str) -> Approval:
        approval_id = approval.id
        outcome = "approve" if approve else "reject"
        try:
            self._authorize(approval, decider)
        except PermissionDenied as exc:
            await self._audit_click(approval, decider, outcome, f"refused: {exc.message}")
            raise
        now = self._clock()
        target = ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED
        won = await self._repo.decide(approval_id, to=target, decided_by=decider, now=now)
        current = await self._repo.get_approval(approval_id)
        if not won or current is None:
            if approval.status is ApprovalStatus.PENDING and approval.expires_at <= now:
                await self._repo.expire_due(now=now)
                current = await self._repo.get_approval(approval_id)
            await self._audit_click(approval, decider, outcome, "already decided")
            raise ApprovalConflict(_already(current or approval))
        await self._audit_click(current, decider, outcome, current.status.value)
        log.info(
            "event=approval_decided approval=%s status=%s decider=%s",
            approval_id,
            current.status.value,
            decider,
        )
        return current

    def _authorize(self, approval: Approval, decider: str) -> None:
        if decider.startswith(OPERATOR_PREFIX):
            return  # the CLI and the admin API act as the operator
        policy = self._policy()
        if decider not in policy.approvers:
            raise PermissionDenied(f"{decider} is not an approver (see [security] approvers)")
        critical = approval.level is SecurityLevel.CRITICAL
        if (
            critical
            and decider == approval.requested_by
            and not policy.requester_may_approve_critical
        ):
            raise PermissionDenied("a critical action needs an approver other than its requester")

    async def _audit_click(
        self, approval: Approval, decider: str, decision: str, outcome: str
    ) -> None:
        await self._audit.append(
            "approval.click",
            actor=decider,
            action_id=approval.action_id,
            data={"approval_id": approval.id, "decision": decision, "outcome": outcome},
        )

    async def claim(self, action_id: str) -> StoredAction | None:
        """Move an approved action to running, at most once; None if someone else did.

        Re-checks the approval's hash against the stored payload: a mismatch fails the
        action instead of running what was not approved.
        """
        stored = await self._repo.get_action(action_id)
        if stored is None:
            raise NotFound(f"no action with id {action_id!r}")
        _, digest = payload_digest(stored.action.payload)
        approval = await self._repo.approval_for_action(action_id)
        expected = approval.payload_sha256 if approval else stored.payload_sha256
        if approval is not None and approval.status is not ApprovalStatus.APPROVED:
            return None
        if digest != expected or digest != stored.payload_sha256:
            await self.finish(action_id, error="the payload does not match what was approved")
            return None
        now = self._clock()
        if not await self._repo.move_action(
            action_id, from_states=[ActionStatus.APPROVED], to=ActionStatus.RUNNING, now=now
        ):
            return None
        await self._audit.append(
            "action.running", action_id=action_id, data={"payload_sha256": digest}
        )
        # Hand back the payload that was hashed, not a fresh read: what runs is what matched.
        running = stored.action.model_copy(
            update={"status": ActionStatus.RUNNING, "updated_at": now}
        )
        return StoredAction(action=running, payload_sha256=digest, result=None, error=None)

    async def finish(
        self, action_id: str, *, result: str | None = None, error: str | None = None
    ) -> None:
        """Record how an action ended."""
        status = ActionStatus.FAILED if error is not None else ActionStatus.SUCCEEDED
        await self._repo.move_action(
            action_id,
            from_states=[ActionStatus.RUNNING, ActionStatus.APPROVED],
            to=status,
            now=self._clock(),
            result=result,
            error=error,
        )
        await self._audit.append(
            "action.finished",
            action_id=action_id,
            data={"status": status.value, "error": error, "result_chars": len(result or "")},
        )

    async def park(self, action_id: str) -> bool:
        """A running chat turn waits for its tool calls' approvals (running -> pending)."""
        moved = await self._repo.move_action(
            action_id,
            from_states=[ActionStatus.RUNNING],
            to=ActionStatus.PENDING_APPROVAL,
            now=self._clock(),
        )
        if moved:
            await self._audit.append("action.waiting", action_id=action_id)
        return moved

    async def resume(self, action_id: str) -> bool:
        """Take a parked chat turn back up, at most once (pending -> running)."""
        moved = await self._repo.move_action(
            action_id,
            from_states=[ActionStatus.PENDING_APPROVAL],
            to=ActionStatus.RUNNING,
            now=self._clock(),
        )
        if moved:
            await self._audit.append("action.resumed", action_id=action_id)
        return moved

    async def expire_due(self) -> list[Approval]:
        """Expire overdue approvals (their actions count as rejected)."""
        expired = await self._repo.expire_due(now=self._clock())
        for approval in expired:
            await self._audit.append(
                "approval.expired", action_id=approval.action_id, data={"approval_id": approval.id}
            )
        return expired

    async def recover_interrupted(self, action_ids: Sequence[str] | None = None) -> list[str]:
        """After a crash: actions left running are failed, never run a second time.

        ``action_ids``: those a dead replica left running; None: every running action (one
        process alone on its database, at start-up). Returns the ids this call failed.
        """
        if action_ids is None:
            action_ids = [stored.action.id for stored in await self._repo.interrupted()]
        ids = []
        for action_id in action_ids:
            if await self._repo.move_action(
                action_id,
                from_states=[ActionStatus.RUNNING],
                to=ActionStatus.FAILED,
                now=self._clock(),
                error=INTERRUPTED,
            ):
                ids.append(action_id)
                await self._audit.append(
                    "action.interrupted", action_id=action_id, data={"error": INTERRUPTED}
                )
        return ids

    async def get_approval(self, approval_id: str) -> Approval:
        """One approval; raises NotFound."""
        approval = await self._repo.get_approval(approval_id)
        if approval is None:
            raise NotFound(f"no approval with id {approval_id!r}")
        return approval

    async def approval_of(self, action_id: str) -> Approval | None:
        """The approval an action waits or waited for; None for auto-approved actions."""
        return await self._repo.approval_for_action(action_id)

    async def list_approvals(
        self,
        statuses: list[ApprovalStatus],
        limit: int = 100,
        *,
        after: PagePosition | None = None,
    ) -> list[Approval]:
        """Newest first; ``after`` (the last approval of a page) starts the next page."""
        return await self._repo.list_approvals(statuses=statuses, limit=limit, after=after)

    async def list_actions(
        self,
        *,
        statuses: list[ActionStatus],
        levels: list[SecurityLevel],
        conversation: ConversationKey | None,
        limit: int = 100,
        after: PagePosition | None = None,
    ) -> list[StoredAction]:
        """Newest first, filtered; ``after`` (the last action of a page) starts the next page."""
        return await self._repo.list_actions(
            statuses=statuses, levels=levels, conversation=conversation, limit=limit, after=after
        )

    async def actions_of(self, approvals: Sequence[Approval]) -> dict[str, StoredAction]:
        """The action of each approval, by action id (one query for a whole page)."""
        return await self._repo.get_actions([a.action_id for a in approvals])

    async def get_action(self, action_id: str) -> StoredAction:
        """One action; raises NotFound."""
        stored = await self._repo.get_action(action_id)
        if stored is None:
            raise NotFound(f"no action with id {action_id!r}")
        return stored


def _already(approval: Approval) -> str:
    who = f" by {approval.decided_by}" if approval.decided_by else ""
    when = f" at {approval.decided_at.isoformat(timespec='seconds')}" if approval.decided_at else ""
    return f"approval {approval.id} was already decided: {approval.status.value}{who}{when}"
