"""Tool calls that wait for a human: approve, reject, expire, concurrency, restarts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from core.errors import ApprovalConflict
from core.storage import Database
from core.storage.inbox_repo import InboxRepository
from core.types import ActionKind, ActionStatus, ApprovalStatus, TurnResult
from tests.core.orchestrator_rig import APPROVER, BASE_CONFIG, Rig, running_rig
from tests.fakes.llm_script import FakeToolCall, Reply


@pytest.fixture
async def rig(migrated_db: Database) -> AsyncIterator[Rig]:
    async with running_rig(migrated_db) as rig:
        yield rig


def ask_deploy(rig: Rig, *, then: str = "Deployed, all good.") -> None:
    rig.script.push(
        Reply(
            text="I will deploy it.",
            tool_calls=(FakeToolCall("deploy", {"service": "web", "env": "prod"}, id="call_d"),),
        ),
        Reply(text=then),
    )


async def pending_turn(rig: Rig) -> TurnResult:
    ask_deploy(rig)
    result = await rig.say("deploy web to prod")
    assert result.status == "awaiting_approval"
    return result


async def test_a_risky_call_waits_and_runs_once_approved(rig: Rig) -> None:
    result = await pending_turn(rig)
    (pending,) = result.pending_approvals
    assert (pending.tool, pending.level.value) == ("deploy", "high")
    assert pending.arguments == {"service": "web", "env": "prod"}
    assert f"/approve {pending.id}" in result.reply and "I will deploy it." in result.reply
    assert rig.deploy.runs == []
    chat = await rig.approvals.get_action(result.action_id or "")
    assert chat.action.status is ActionStatus.PENDING_APPROVAL

    approval = await rig.approvals.decide(pending.id, approve=True, decider=APPROVER)
    resumed = await rig.orchestrator.settle(approval)
    assert rig.deploy.runs == [{"service": "web", "env": "prod"}]
    assert resumed is not None and resumed.reply == "Deployed, all good."
    assert rig.sink.delivered == [resumed]
    assert rig.sink.closed == [(pending.id, "approved", APPROVER)]
    tool_text = [t for r, t in rig.script.chat_requests[-1].messages if r == "tool"][0]
    assert "deployed web" in tool_text
    tool_action = await rig.approvals.get_action(pending.action_id)
    assert tool_action.action.status is ActionStatus.SUCCEEDED
    assert (await rig.approvals.get_action(result.action_id or "")).action.status is (
        ActionStatus.SUCCEEDED
    )
    kinds = [r.kind for r in await rig.audit.tail(100)]
    for kind in ("approval.asked", "approval.click", "action.running", "action.resumed"):
        assert kind in kinds
    assert (await rig.audit.verify()).ok


async def test_approve_in_the_chat_by_an_approver_answers_in_place(rig: Rig) -> None:
    result = await pending_turn(rig)
    approval_id = result.pending_approvals[0].id
    refused = await rig.say(f"/approve {approval_id}")  # the requester is not an approver
    assert "Not allowed" in refused.reply and "not an approver" in refused.reply
    assert rig.deploy.runs == []
    done = await rig.say(f"/approve {approval_id}", user="7")
    assert done.reply.startswith(f"Approved by {APPROVER}: {approval_id}.")
    assert "Deployed, all good." in done.reply
    assert rig.deploy.runs == [{"service": "web", "env": "prod"}]
    assert rig.sink.delivered == []  # answered in place, not twice
    again = await rig.say(f"/approve {approval_id}", user="7")
    assert "already decided: approved by telegram:7" in again.reply
    assert len(rig.deploy.runs) == 1


async def test_a_rejected_call_never_runs_and_the_model_is_told(rig: Rig) -> None:
    result = await pending_turn(rig)
    approval = await rig.approvals.decide(
        result.pending_approvals[0].id, approve=False, decider=APPROVER
    )
    resumed = await rig.orchestrator.settle(approval)
    assert rig.deploy.runs == []
    assert resumed is not None
    tool_text = [t for r, t in rig.script.chat_requests[-1].messages if r == "tool"][0]
    assert "telegram:7 rejected this call" in tool_text


async def test_an_expired_approval_resumes_the_turn_as_not_run(rig: Rig) -> None:
    await pending_turn(rig)
    rig.clock.advance(601)
    assert await rig.orchestrator.sweep() == 1
    assert rig.deploy.runs == []
    (delivered,) = rig.sink.delivered
    assert delivered.reply == "Deployed, all good."  # the scripted answer; the model was told
    tool_text = [t for r, t in rig.script.chat_requests[-1].messages if r == "tool"][0]
    assert "expired" in tool_text
    approvals = await rig.approvals.list_approvals([ApprovalStatus.EXPIRED])
    assert len(approvals) == 1
    assert rig.sink.closed == [(approvals[0].id, "expired", "timeout")]


async def test_many_concurrent_approvals_run_the_action_once(rig: Rig) -> None:
    result = await pending_turn(rig)
    approval_id = result.pending_approvals[0].id

    async def click() -> str:
        try:
            approval = await rig.approvals.decide(approval_id, approve=True, decider=APPROVER)
        except ApprovalConflict:
            return "conflict"
        await rig.orchestrator.settle(approval)
        return "won"

    outcomes = await asyncio.gather(*(click() for _ in range(25)), rig.orchestrator.sweep())
    assert outcomes.count("won") == 1 and outcomes.count("conflict") == 24
    assert len(rig.deploy.runs) == 1
    assert len(rig.sink.delivered) == 1


async def test_two_calls_in_one_turn_resume_once_both_are_decided(rig: Rig) -> None:
    rig.script.push(
        Reply(
            tool_calls=(
                FakeToolCall("deploy", {"service": "web"}, id="c1"),
                FakeToolCall("deploy", {"service": "db"}, id="c2"),
            )
        ),
        Reply(text="one yes, one no"),
    )
    result = await rig.say("deploy both")
    first, second = result.pending_approvals
    a = await rig.approvals.decide(first.id, approve=True, decider=APPROVER)
    assert await rig.orchestrator.settle(a) is None  # the other one still waits
    b = await rig.approvals.decide(second.id, approve=False, decider=APPROVER)
    resumed = await rig.orchestrator.settle(b)
    assert resumed is not None and resumed.reply == "one yes, one no"
    assert rig.deploy.runs == [{"service": "web"}]
    tools = [t for r, t in rig.script.chat_requests[-1].messages if r == "tool"]
    assert "deployed web" in tools[0] and "rejected" in tools[1]


async def test_the_user_can_talk_while_an_approval_waits(rig: Rig) -> None:
    result = await pending_turn(rig)
    rig.script.steps.clear()
    rig.script.push(Reply(text="Still waiting for the approver."))
    chatter = await rig.say("is it done?")
    assert chatter.reply == "Still waiting for the approver."
    tool_text = [t for r, t in rig.script.chat_requests[-1].messages if r == "tool"][0]
    assert "awaiting approval" in tool_text
    approval = await rig.approvals.decide(
        result.pending_approvals[0].id, approve=True, decider=APPROVER
    )
    rig.script.push(Reply(text="Now it is deployed."))
    resumed = await rig.orchestrator.settle(approval)
    assert resumed is not None and resumed.reply == "Now it is deployed."
    last = rig.script.chat_requests[-1].messages
    assert last[-1][0] == "user" and "approvals asked for earlier were decided" in last[-1][1]


async def test_a_pending_approval_survives_a_restart(rig: Rig) -> None:
    result = await pending_turn(rig)
    rig.restart()
    approval = await rig.approvals.decide(
        result.pending_approvals[0].id, approve=True, decider=APPROVER
    )
    assert rig.deploy.runs == []
    assert await rig.orchestrator.sweep() == 1  # decided elsewhere: the sweeper runs it
    assert rig.deploy.runs == [{"service": "web", "env": "prod"}]
    assert approval.status is ApprovalStatus.APPROVED
    assert await rig.orchestrator.sweep() == 0
    assert len(rig.deploy.runs) == 1


async def test_an_action_interrupted_while_running_is_never_run_again(rig: Rig) -> None:
    result = await pending_turn(rig)
    pending = result.pending_approvals[0]
    await rig.approvals.decide(pending.id, approve=True, decider=APPROVER)
    claimed = await rig.approvals.claim(pending.action_id)  # the process dies right here
    assert claimed is not None
    rig.restart()
    assert await rig.approvals.recover_interrupted() == [pending.action_id]
    assert await rig.orchestrator.sweep() == 1
    assert rig.deploy.runs == []
    tool_text = [t for r, t in rig.script.chat_requests[-1].messages if r == "tool"][0]
    assert "interrupted by a restart" in tool_text


async def test_a_reset_while_waiting_drops_the_parked_turn(rig: Rig) -> None:
    result = await pending_turn(rig)
    await rig.say("/reset")
    approval = await rig.approvals.decide(
        result.pending_approvals[0].id, approve=False, decider=APPROVER
    )
    requests = len(rig.script.chat_requests)
    assert await rig.orchestrator.settle(approval) is None
    assert len(rig.script.chat_requests) == requests
    chat = await rig.approvals.get_action(result.action_id or "")
    assert chat.action.status is ActionStatus.FAILED


async def test_auto_approve_threshold_is_the_config_in_force(rig: Rig) -> None:
    rig.set_config(security={**BASE_CONFIG["security"], "auto_approve": "high"})
    ask_deploy(rig)
    result = await rig.say("deploy")
    assert result.status == "answered" and rig.deploy.runs == [{"service": "web", "env": "prod"}]
    actions = await rig.approvals.list_actions(statuses=[], levels=[], conversation=None)
    assert {s.action.kind for s in actions} == {ActionKind.CHAT, ActionKind.TOOL_CALL}


async def test_a_message_accepted_before_a_crash_is_answered_after_it(rig: Rig) -> None:
    lost = rig.message("were you listening?", message_id="lost-1")
    inbox = InboxRepository(rig.db)
    assert await inbox.accept(lost, now=rig.clock())  # accepted, then the process died
    rig.restart()
    assert await rig.orchestrator.recover() == 1
    (answer,) = rig.sink.delivered
    assert answer.reply == "fake[fake-small]: were you listening?"
    assert answer.in_reply_to == "lost-1"
    assert await inbox.status_of(platform="telegram", message_id="lost-1") == "handled"
    assert await rig.orchestrator.recover() == 0
    assert (await rig.orchestrator.handle(lost)).status == "duplicate"


async def test_a_turn_cut_off_by_a_crash_is_answered_once_from_its_history(rig: Rig) -> None:
    rig.set_config(security={**BASE_CONFIG["security"], "auto_approve": "high"})
    rig.script.push(
        Reply(tool_calls=(FakeToolCall("deploy", {"service": "web"}, id="c1"),)),
        Reply(text="never seen: the process dies while this is on its way", delay_s=5),
    )
    message = rig.message("deploy web", message_id="cut-1")
    turn = asyncio.create_task(rig.orchestrator.handle(message))
    for _ in range(500):
        if len(rig.script.chat_requests) == 2:
            break
        await asyncio.sleep(0.01)
    turn.cancel()  # the process dies mid-turn: the tool ran, the answer never came
    with pytest.raises(asyncio.CancelledError):
        await turn
    rig.restart()
    await rig.approvals.recover_interrupted()
    rig.script.steps.clear()
    rig.script.push(Reply(text="Deployed web (after a restart)."))
    assert await rig.orchestrator.recover() == 1
    (answer,) = rig.sink.delivered
    assert answer.reply == "Deployed web (after a restart)."
    assert rig.deploy.runs == [{"service": "web"}]  # the tool did not run a second time
    last = rig.script.chat_requests[-1].messages
    assert [text for role, text in last if role == "user"] == ["deploy web"]
    assert any(role == "tool" and "deployed web" in text for role, text in last)
