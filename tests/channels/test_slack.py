"""The Slack channel end to end: the real gateway, slack-bolt and slack-sdk, and the Slack fake.

The gateway is built from a workspace config whose Slack ``api_base`` points at the Web API
fake and whose default provider is the OpenAI fake. Each test plays Slack: it signs Events
API and interactivity requests and POSTs them to the gateway's ``/slack/events`` (or, in
Socket Mode, pushes envelopes over the fake's websocket), then reads what the bot posted.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

# Imported at collection, as the gateway imports it only when Slack is configured: inside
# the first test's timed start-up it would eat into the lifespan's time limit.
import channels.slack  # noqa: F401
from tests.fakes import openai_api
from tests.fakes.llm_script import FakeToolCall, Reply, Script
from tests.fakes.server import serve_app
from tests.fakes.slack_api import APP_TOKEN, BOT_ID, BOT_TOKEN, BOT_USER, SIGNING_SECRET, FakeSlack
from tests.fakes.slack_api import make_app as slack_app
from tests.fakes.slack_socket import FakeSocketMode
from tests.gateway.conftest import app_client

LLM_KEY = "sk-test-0123456789abcdef"
APPROVER, ALICE = "U0APPROVER", "U0ALICE"
GENERAL, ALICE_DM = "C0GENERAL", "D0ALICE"
NO_ADMIN = {"Authorization": ""}  # Slack's requests carry no admin token


@dataclass
class World:
    slack: FakeSlack
    llm: Script
    api: httpx.AsyncClient
    socket: FakeSocketMode | None = None

    async def post(self, payload: dict[str, Any], **signing: Any) -> httpx.Response:
        """POST ``payload`` to the Request URL as Slack would (signed, unless told otherwise)."""
        body, headers = self.slack.signed(payload, **signing)
        return await self.api.post("/slack/events", content=body, headers=headers | NO_ADMIN)

    async def event(self, event: dict[str, Any], **signing: Any) -> dict[str, Any]:
        """Deliver ``event`` in an event_callback; returns the event."""
        response = await self.post(self.slack.envelope(event), **signing)
        assert response.status_code == 200, response.text
        return event


def configure(workspace: Path, *, slack_url: str, llm_url: str, mode: str) -> None:
    text = workspace.read_text().replace("default = true\n", "")
    text = text.replace("approvers = []", f'approvers = ["slack:{APPROVER}"]')
    text += f"""
[providers.gpt]
type = "openai"
base_url = "{llm_url}/v1"
api_key = "env:SB_TEST_OPENAI_KEY"
default_model = "fake-small"
default = true
max_retries = 0

[tools.shell]
enabled = true
allow = ["echo"]

[channels.slack]
bot_token = "env:SB_SLACK_BOT_TOKEN"
signing_secret = "env:SB_SLACK_SIGNING_SECRET"
app_token = "env:SB_SLACK_APP_TOKEN"
mode = "{mode}"
api_base = "{slack_url}/api/"
"""
    workspace.write_text(text)


@asynccontextmanager
async def world_for(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, *, mode: str = "http", token: str = BOT_TOKEN
) -> AsyncIterator[World]:
    monkeypatch.setenv("SB_SLACK_BOT_TOKEN", token)
    monkeypatch.setenv("SB_SLACK_SIGNING_SECRET", SIGNING_SECRET)
    monkeypatch.setenv("SB_SLACK_APP_TOKEN", APP_TOKEN)
    monkeypatch.setenv("SB_TEST_OPENAI_KEY", LLM_KEY)
    slack, llm, socket = FakeSlack(), Script(api_key=LLM_KEY), FakeSocketMode()
    async with (
        serve_app(slack_app(slack)) as slack_url,
        serve_app(openai_api.make_app(llm)) as llm_url,
        socket.serve(),
    ):
        slack.base_url = slack_url
        slack.socket = socket
        configure(workspace, slack_url=slack_url, llm_url=llm_url, mode=mode)
        async with app_client(workspace) as api:
            world = World(slack, llm, api, socket if mode == "socket" else None)
            await eventually(lambda: slack.posts("auth.test"))  # the channel is running
            yield world


@pytest.fixture
async def world(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    async with world_for(workspace, monkeypatch) as world:
        yield world


async def eventually(check: Callable[[], Any], *, within_s: float = 15.0) -> Any:
    """Poll ``check`` until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        value = check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {within_s} s")
        await asyncio.sleep(0.02)


async def test_url_verification_answers_the_challenge(world: World) -> None:
    challenge = {"token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
    response = await world.post(challenge | {"type": "url_verification"})
    assert response.status_code == 200
    assert response.json() == {"challenge": challenge["challenge"]}


async def test_a_mention_is_answered_in_its_thread_without_the_mention(world: World) -> None:
    asked = await world.event(world.slack.mention(GENERAL, ALICE, "what is up?"))
    (sent,) = await eventually(lambda: world.slack.messages(GENERAL))
    assert sent.text == "fake[fake-small]: what is up?"
    assert sent.thread_ts == asked["ts"]
    channels = (await world.api.get("/api/channels")).json()
    assert channels["slack"]["connected"] is True and channels["slack"]["mode"] == "http"
    assert channels["slack"]["bot"] == "switchboard"
    ready = (await world.api.get("/readyz")).json()
    assert ready["checks"]["channels"]["slack"]["connected"] is True


async def test_a_reply_in_a_thread_stays_in_that_thread(world: World) -> None:
    first = await world.event(world.slack.mention(GENERAL, ALICE, "first"))
    await eventually(lambda: world.slack.messages(GENERAL))
    await world.event(world.slack.mention(GENERAL, ALICE, "second", thread_ts=first["ts"]))
    answers = await eventually(lambda: (m := world.slack.messages(GENERAL)) and len(m) == 2 and m)
    assert [m.thread_ts for m in answers] == [first["ts"], first["ts"]]
    history = world.llm.chat_requests[-1].messages
    assert [text for role, text in history if role == "user"] == ["first", "second"]


async def test_forged_or_stale_requests_get_401_and_change_nothing(world: World) -> None:
    mention = world.slack.envelope(world.slack.mention(GENERAL, ALICE, "do something"))
    forged = await world.post(mention, secret="not-the-signing-secret")
    stale = await world.post(mention, age_s=6 * 60)  # right signature, 6 minutes old
    body, headers = world.slack.signed(mention)
    unsigned = await world.api.post(
        "/slack/events", content=body, headers={"Content-Type": "application/json"} | NO_ADMIN
    )
    press = world.slack.signed({"type": "block_actions", "actions": []}, form=True, secret="x")
    forged_press = await world.api.post("/slack/events", content=press[0], headers=press[1])
    assert [r.status_code for r in (forged, stale, unsigned, forged_press)] == [401] * 4
    await asyncio.sleep(0.3)
    assert (await world.api.get("/api/actions")).json() == []
    assert world.llm.chat_requests == []
    assert world.slack.posts() == [] and world.slack.ephemerals == []
    assert (await world.post(mention)).status_code == 200  # the same request, signed: taken
    await eventually(lambda: world.slack.messages(GENERAL))


async def test_a_retried_event_and_its_message_im_twin_are_answered_once(world: World) -> None:
    dm = world.slack.message_event(ALICE_DM, ALICE, "only once please")
    envelope = world.slack.envelope(dm)
    assert (await world.post(envelope)).status_code == 200
    assert (await world.post(envelope, retry_num=1)).status_code == 200  # Slack resends it
    twin = {k: v for k, v in dm.items() if k != "channel_type"}
    await world.event(twin | {"type": "app_mention", "text": f"<@{BOT_USER}> only once please"})
    await world.event(world.slack.message_event(ALICE_DM, ALICE, "next"))
    answers = await eventually(lambda: (m := world.slack.messages(ALICE_DM)) and len(m) == 2 and m)
    await asyncio.sleep(0.3)  # time for a duplicate to show up, if there were one
    assert [m.text for m in world.slack.messages(ALICE_DM)] == [
        "fake[fake-small]: only once please",
        "fake[fake-small]: next",
    ]
    assert [m.thread_ts for m in answers] == [None, None]  # a DM is answered in the chat
    assert len(world.llm.chat_requests) == 2


async def test_bot_messages_edits_and_unaddressed_messages_are_ignored(world: World) -> None:
    slack = world.slack
    await world.event(slack.message_event(ALICE_DM, "U0OTHERBOT", "beep", bot_id="B0OTHER"))
    await world.event(
        slack.message_event(ALICE_DM, "", "beep", subtype="bot_message", bot_id="B0OTHER")
    )
    await world.event(slack.message_event(ALICE_DM, BOT_USER, "my own words", bot_id=BOT_ID))
    await world.event(slack.message_event(ALICE_DM, ALICE, "edited", subtype="message_changed"))
    await world.event(slack.message_event(GENERAL, ALICE, "just chatting, no mention"))
    await world.event(slack.message_event(ALICE_DM, ALICE, "hello bot"))
    (sent,) = await eventually(lambda: slack.messages(ALICE_DM))
    assert sent.text == "fake[fake-small]: hello bot"
    await asyncio.sleep(0.3)
    assert len(world.llm.chat_requests) == 1 and slack.messages(GENERAL) == []


async def test_long_answers_are_split_and_rendered_as_mrkdwn(world: World) -> None:
    paragraph = "A **bold** claim with `code` and <angle> & ampersand. " * 40
    world.llm.push(Reply(text="\n\n".join([paragraph] * 4)))
    asked = await world.event(world.slack.mention(GENERAL, ALICE, "write a lot"))
    started = asyncio.get_running_loop().time()
    parts = await eventually(lambda: (m := world.slack.messages(GENERAL)) and len(m) >= 4 and m)
    # Paced at about one message a second per channel (Slack's limit for chat.postMessage).
    assert asyncio.get_running_loop().time() - started >= 2.5
    await asyncio.sleep(0.2)
    parts = world.slack.messages(GENERAL)
    assert len(parts) == 4 and all(len(m.text) <= 3000 for m in parts)
    assert all(m.thread_ts == asked["ts"] for m in parts)
    assert "*bold*" in parts[0].text and "**" not in parts[0].text
    assert "&lt;angle&gt; &amp; ampersand" in parts[0].text


async def test_a_rate_limited_post_is_retried_after_retry_after_and_sent_once(
    world: World,
) -> None:
    world.slack.fail_next("chat.postMessage", status=429, retry_after=1)
    started = asyncio.get_running_loop().time()
    await world.event(world.slack.mention(GENERAL, ALICE, "are you there?"))
    (sent,) = await eventually(lambda: world.slack.messages(GENERAL), within_s=20)
    assert asyncio.get_running_loop().time() - started >= 0.9  # waited for Retry-After
    assert sent.text == "fake[fake-small]: are you there?"
    assert len(world.slack.posts("chat.postMessage")) == 2  # the refused one and the retry


async def test_a_slow_answer_streams_into_one_edited_message(world: World) -> None:
    text = "Streaming **answers** arrive piece by piece & <grow>, " * 6
    world.llm.push(Reply(text=text, chunk_delay_s=0.5))
    asked = await world.event(world.slack.mention(GENERAL, ALICE, "take your time"))
    (shown,) = await eventually(lambda: world.slack.messages(GENERAL))
    assert shown.thread_ts == asked["ts"]
    assert world.slack.posts()[0]["mrkdwn"] is False  # the preview: unformatted while it grows
    await eventually(lambda: "*answers*" in shown.text and "**" not in shown.text, within_s=20)
    assert len(world.slack.messages(GENERAL)) == 1 and shown.edits  # replaced in place
    assert "&amp; &lt;grow&gt;" in shown.text
    assert world.llm.chat_requests[-1].stream


async def press(world: World, message: Any, user: str, *, button: int) -> None:
    payload = world.slack.block_actions(message, user, button=button)
    response = await world.post(payload, form=True)
    assert response.status_code == 200, response.text


async def test_approval_buttons_only_approvers_count(world: World) -> None:
    world.llm.push(
        Reply(
            text="I will run it.",
            tool_calls=(FakeToolCall("shell", {"argv": ["echo", "slack-ok"]}, id="c1"),),
        ),
        Reply(text="It printed slack-ok."),
    )
    asked = await world.event(world.slack.mention(GENERAL, ALICE, "run echo"))
    reply, ask = await eventually(
        lambda: (m := world.slack.messages(GENERAL)) and len(m) == 2 and m
    )
    assert reply.text == "I will run it." and ask.thread_ts == asked["ts"]
    assert "Approval needed" in ask.shown and "shell" in ask.shown and "slack-ok" in ask.shown
    approve, reject = ask.buttons
    assert (approve["text"]["text"], reject["text"]["text"]) == ("Approve", "Reject")
    assert (approve["style"], reject["style"]) == ("primary", "danger")
    assert approve["value"].startswith("sb:y:") and reject["value"].startswith("sb:n:")

    as_first_posted = copy.deepcopy(ask)
    await press(world, ask, ALICE, button=0)  # the requester is no approver
    (refusal,) = await eventually(lambda: world.slack.ephemerals)
    assert refusal.user == ALICE and refusal.channel == GENERAL
    assert "not an approver" in refusal.text and refusal.thread_ts == asked["ts"]
    await asyncio.sleep(0.3)
    runs = (await world.api.get("/api/actions", params={"status": "succeeded"})).json()
    assert not [a for a in runs if a["kind"] == "tool_call"]
    assert ask.buttons and len(world.slack.messages(GENERAL)) == 2

    await press(world, ask, APPROVER, button=0)
    await eventually(lambda: len(world.slack.ephemerals) == 2)
    assert world.slack.ephemerals[1].user == APPROVER
    assert "Approved" in world.slack.ephemerals[1].text
    final = await eventually(lambda: (m := world.slack.messages(GENERAL)) and len(m) == 3 and m[-1])
    assert final.text == "It printed slack-ok." and final.thread_ts == asked["ts"]
    await eventually(lambda: "Approved" in ask.shown)
    assert f"slack:{APPROVER}" in ask.shown and ask.buttons == []
    # The core may settle a decision twice; each time it is the same edit.
    assert ask.edits and all(edit == ask.edits[0] for edit in ask.edits)
    tool_text = [t for r, t in world.llm.chat_requests[-1].messages if r == "tool"][0]
    assert "slack-ok" in tool_text
    runs = (await world.api.get("/api/actions", params={"status": "succeeded"})).json()
    assert len([a for a in runs if a["kind"] == "tool_call"]) == 1

    await press(world, as_first_posted, APPROVER, button=1)  # a client that missed the edit
    await eventually(lambda: len(world.slack.ephemerals) == 3)
    assert "already decided" in world.slack.ephemerals[2].text
    assert world.slack.ephemerals[2].user == APPROVER


async def test_socket_mode_answers_and_acknowledges_each_envelope(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with world_for(workspace, monkeypatch, mode="socket") as world:
        socket = world.socket
        assert socket is not None
        await eventually(lambda: socket.connected == 1)
        status = await _eventually_connected(world)
        assert status["mode"] == "socket"
        asked = world.slack.mention(GENERAL, ALICE, "over the socket")
        envelope = world.slack.envelope(asked)
        envelope_id = await socket.send(envelope)
        (sent,) = await eventually(lambda: world.slack.messages(GENERAL))
        assert sent.text == "fake[fake-small]: over the socket" and sent.thread_ts == asked["ts"]
        assert socket.acked(envelope_id)
        retried = await socket.send(envelope, retry_attempt=1)  # Slack resends it
        await eventually(lambda: socket.acked(retried))
        over_http = await world.post(envelope)
        assert over_http.status_code == 404  # no HTTP Request URL in Socket Mode
        await asyncio.sleep(0.3)
        assert len(world.slack.messages(GENERAL)) == 1 and len(world.llm.chat_requests) == 1

        await socket.disconnect()  # Slack asks for a reconnect: a fresh URL, a new socket
        await eventually(lambda: socket.connections == 2 and socket.connected == 1)
        assert len(world.slack.posts("apps.connections.open")) == 2
        again = world.slack.message_event(ALICE_DM, ALICE, "still there?")
        second = await socket.send(world.slack.envelope(again), retry_attempt=0)
        (dm,) = await eventually(lambda: world.slack.messages(ALICE_DM))
        assert dm.text == "fake[fake-small]: still there?" and socket.acked(second)


async def _eventually_connected(world: World) -> dict[str, Any]:
    for _ in range(500):
        status: dict[str, Any] = (await world.api.get("/api/channels")).json()["slack"]
        if status["connected"]:
            return status
        await asyncio.sleep(0.02)
    raise AssertionError("the Slack channel never connected")


async def test_socket_mode_takes_button_presses_too(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with world_for(workspace, monkeypatch, mode="socket") as world:
        socket = world.socket
        assert socket is not None
        await _eventually_connected(world)
        world.llm.push(
            Reply(text="", tool_calls=(FakeToolCall("shell", {"argv": ["echo", "ws"]}, id="c1"),)),
            Reply(text="Done: ws."),
        )
        asked = world.slack.mention(GENERAL, ALICE, "run echo over the socket")
        await socket.send(world.slack.envelope(asked))
        (ask,) = await eventually(lambda: world.slack.messages(GENERAL))
        assert [b["text"]["text"] for b in ask.buttons] == ["Approve", "Reject"]
        pressed = await socket.send(
            world.slack.block_actions(ask, APPROVER, button=0), kind="interactive"
        )
        final = await eventually(lambda: (m := world.slack.messages(GENERAL)) and len(m) == 2 and m)
        assert final[-1].text == "Done: ws." and socket.acked(pressed)
        await eventually(lambda: "Approved" in ask.shown and not ask.buttons)
        notice = await eventually(lambda: world.slack.ephemerals)
        assert notice[0].user == APPROVER and "Approved" in notice[0].text


async def test_a_wrong_bot_token_shows_in_the_channel_status(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with world_for(workspace, monkeypatch, token="xoxb-wrong") as world:
        status = (await world.api.get("/api/channels")).json()["slack"]
        for _ in range(100):
            if status["last_error"]:
                break
            await asyncio.sleep(0.02)
            status = (await world.api.get("/api/channels")).json()["slack"]
        assert status["connected"] is False and status["consecutive_failures"] >= 1
        assert "invalid_auth" in status["last_error"] and "bot_token" in status["last_error"]
        assert BOT_TOKEN not in str(status) and "xoxb-wrong" not in str(status)
        ready = (await world.api.get("/readyz")).json()
        assert ready["status"] == "degraded"
        assert ready["checks"]["channels"]["slack"]["connected"] is False
