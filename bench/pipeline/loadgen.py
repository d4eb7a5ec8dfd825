"""Telegram updates POSTed to the replicas' webhooks, and the replies seen at the fake.

A message is in flight from the moment its webhook POST is written until the fake Bot API
accepts its answer: a ``sendMessage`` in HTML replying to it, or the HTML edit of a
streamed preview that replied to it, or that preview itself once it shows the whole
answer. The fake stamps that moment with ``time.monotonic()`` in its own process; this
process stamps the POST with the same system-wide clock, so latency = reply stamp - POST
stamp.

Two loads: ``closed_loop`` keeps ``in_flight`` messages waiting for their reply (saturation),
``open_loop`` sends at a fixed rate whatever happens (latency at a given load). Updates are
sent round-robin over the replicas, each on keep-alive connections of the raw HTTP client
of ``bench.provider_overhead.loadgen`` (cheaper per request than httpx on 2 cores).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx

from bench.provider_overhead.loadgen import Connection, Sample, Target, connect, one

MessageKey = tuple[int, int]  # (chat id, message id) of the user's message
UPDATE_BATCH = 500
POLL_PAUSE_S = 0.005  # between read-backs that found something: bounds the polling rate
REOPEN_IDLE_S = 2.0  # uvicorn closes a keep-alive connection idle for 5 s


@dataclass
class SentMessage:
    """One update POSTed to a webhook, and what became of it."""

    key: MessageKey
    text: str
    phase: str
    replica: int
    sent_at: float  # time.monotonic() just before the POST was written
    due_at: float  # when the schedule wanted it sent (= sent_at in a closed loop)
    ack_s: float = 0.0
    status: int = 0


@dataclass
class Answer:
    """A final reply the fake accepted for one user message: one message the user sees."""

    at: float
    text: str
    message_id: int  # the bot's message (a preview's, when the answer replaced it)


@dataclass
class Webhooks:
    """Where the updates go: each replica's ``/telegram/webhook``."""

    ports: list[int]
    secret: str
    _turn: Iterator[int] = field(init=False)

    def __post_init__(self) -> None:
        self._turn = itertools.cycle(range(len(self.ports)))

    def next_replica(self) -> int:
        """Round-robin over the replicas."""
        return next(self._turn)

    def target(self, replica: int, update: dict[str, Any] | None = None) -> Target:
        """The POST of ``update`` (an empty body when only connecting) to ``replica``."""
        body = json.dumps(update).encode() if update is not None else b""
        headers = {"X-Telegram-Bot-Api-Secret-Token": self.secret}
        return Target("127.0.0.1", self.ports[replica], "/telegram/webhook", body, headers)


class KeptConnection:
    """A keep-alive connection to one replica, reopened before the server drops it idle."""

    def __init__(self, target: Target) -> None:
        self._target = target
        self._conn: Connection | None = None
        self._used = 0.0

    async def ready(self) -> None:
        """Open (again) if needed, so that the next ``send`` writes at once."""
        if self._conn is None or time.monotonic() - self._used > REOPEN_IDLE_S:
            self.close()
            self._conn = await connect(self._target)
            self._used = time.monotonic()

    async def send(self, payload: bytes) -> Sample:
        """One request and its whole answer; once more on a fresh connection if it was closed."""
        await self.ready()
        assert self._conn is not None
        try:
            sample = await one(self._conn, payload)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.close()
            self._conn = await connect(self._target)
            sample = await one(self._conn, payload)
        self._used = time.monotonic()
        return sample

    def close(self) -> None:
        """Close the connection (a later ``ready`` opens a new one)."""
        if self._conn is not None:
            self._conn.writer.close()
            self._conn = None


class UpdateFeed:
    """Telegram Updates made by the fake (its chats and message ids), fetched in batches."""

    def __init__(self, fake: httpx.AsyncClient) -> None:
        self._fake = fake
        self._buffer: deque[dict[str, Any]] = deque()
        self._fetching = asyncio.Lock()  # one batch at a time, however many senders run dry

    async def prefetch(self, count: int) -> None:
        """Have at least ``count`` updates ready (before a timed phase)."""
        async with self._fetching:
            while len(self._buffer) < count:
                answer = await self._fake.post("/_bench/updates", json={"count": UPDATE_BATCH})
                answer.raise_for_status()
                self._buffer.extend(answer.json())

    async def take(self) -> dict[str, Any]:
        """The next update."""
        if not self._buffer:
            await self.prefetch(1)
        return self._buffer.popleft()


class ReplyWatcher:
    """Reads the fake's recorded replies as they come and matches them to sent messages."""

    def __init__(self, fake: httpx.AsyncClient) -> None:
        self._fake = fake
        self.sent: dict[MessageKey, SentMessage] = {}
        self.answers: dict[MessageKey, list[Answer]] = {}
        self.unmatched = 0  # final replies to no message this run sent
        self.previews = 0
        self.repeated_edits = 0
        self.shown_by_preview = 0  # answers first seen whole in a plain-text preview
        self._preview_of: dict[MessageKey, MessageKey] = {}  # bot message -> user message
        self._waiters: dict[MessageKey, asyncio.Future[None]] = {}
        self._next = 0
        self._task: asyncio.Task[None] | None = None
        self.last_reply_at = time.monotonic()

    async def __aenter__(self) -> ReplyWatcher:
        self._task = asyncio.create_task(self._follow())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def expect(self, message: SentMessage) -> asyncio.Future[None]:
        """Register a message about to be sent; the future is done at its first reply."""
        self.sent[message.key] = message
        waiter = asyncio.get_running_loop().create_future()
        self._waiters[message.key] = waiter
        return waiter

    async def _follow(self) -> None:
        while True:
            answer = await self._fake.get(
                "/_bench/replies", params={"after": self._next, "wait": 1.0}
            )
            answer.raise_for_status()
            data = answer.json()
            self._next = data["next"]
            for reply in data["replies"]:
                self._take(reply)
            if data["replies"]:
                await asyncio.sleep(POLL_PAUSE_S)

    def _take(self, reply: dict[str, Any]) -> None:
        chat, message_id = int(reply["chat_id"]), int(reply["message_id"])
        formatted = reply["parse_mode"] == "HTML"  # the answer; plain text: a streamed preview
        if reply["method"] == "sendMessage":
            key = (chat, reply["reply_to"]) if reply["reply_to"] is not None else None
            if not formatted and key is not None:
                self._preview_of[(chat, message_id)] = key
                self.previews += 1
        else:
            key = self._preview_of.get((chat, message_id))
        sent = self.sent.get(key) if key is not None else None
        if key is None or sent is None:
            if formatted:
                self.unmatched += 1
            return
        if not formatted and sent.text not in reply["text"]:
            return  # a preview of part of the answer
        # A preview that already shows the whole answer counts: the final edit then changes
        # nothing, Telegram refuses it ("message is not modified") and the fake records none.
        answers = self.answers.setdefault(key, [])
        self.last_reply_at = time.monotonic()
        if any(a.message_id == message_id for a in answers):
            self.repeated_edits += 1  # the same message edited again: the user sees no second one
            return
        answer = Answer(at=float(reply["at"]), text=reply["text"], message_id=message_id)
        answers.append(answer)
        if not formatted:
            self.shown_by_preview += 1
        waiter = self._waiters.pop(key, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def answered_since(self, moment: float) -> int:
        """How many messages got their first reply after ``moment``."""
        return sum(1 for answers in self.answers.values() if answers[0].at >= moment)

    def check(self) -> None:
        """Raise what stopped the read-back, if it stopped (the fake gone, a bad answer)."""
        if self._task is not None and self._task.done():
            self._task.result()
            raise RuntimeError("the reply read-back stopped")

    async def drain(self, *, quiet_s: float) -> None:
        """Wait until every message sent is answered, or no reply came for ``quiet_s``."""
        while True:
            self.check()
            waiting = [k for k, m in self.sent.items() if m.status == 200 and k not in self.answers]
            if not waiting or time.monotonic() - self.last_reply_at > quiet_s:
                return
            await asyncio.sleep(0.1)


class LoadGenerator:
    """Sends updates to the webhooks; the watcher sees their replies."""

    def __init__(self, *, webhooks: Webhooks, feed: UpdateFeed, watcher: ReplyWatcher) -> None:
        self._webhooks = webhooks
        self._feed = feed
        self._watcher = watcher

    async def _post(
        self,
        conn: KeptConnection,
        update: dict[str, Any],
        *,
        replica: int,
        phase: str,
        due: float,
    ) -> tuple[SentMessage, asyncio.Future[None]]:
        message = update["message"]
        sent = SentMessage(
            key=(int(message["chat"]["id"]), int(message["message_id"])),
            text=message["text"],
            phase=phase,
            replica=replica,
            sent_at=0.0,
            due_at=due,
        )
        waiter = self._watcher.expect(sent)
        payload = self._webhooks.target(replica, update).request()
        await conn.ready()
        sent.sent_at = time.monotonic()
        sample = await conn.send(payload)
        sent.ack_s, sent.status = sample.total, sample.status
        return sent, waiter

    async def closed_loop(
        self,
        *,
        phase: Callable[[], str],
        in_flight: int,
        stop: asyncio.Event,
        reply_timeout_s: float,
    ) -> None:
        """``in_flight`` messages awaiting their reply at all times, until ``stop`` is set.

        Each message is tagged with what ``phase()`` says when it is sent.
        """
        replicas = range(len(self._webhooks.ports))

        async def sender() -> None:
            conns = [KeptConnection(self._webhooks.target(r)) for r in replicas]
            try:
                while not stop.is_set():
                    update = await self._feed.take()
                    replica = self._webhooks.next_replica()
                    now = time.monotonic()
                    sent, waiter = await self._post(
                        conns[replica], update, replica=replica, phase=phase(), due=now
                    )
                    if sent.status != 200:
                        continue
                    # a late or lost reply frees the slot after the timeout (counted at the end)
                    await asyncio.wait(
                        {waiter, stopped}, timeout=reply_timeout_s, return_when="FIRST_COMPLETED"
                    )
            finally:
                for conn in conns:
                    conn.close()

        stopped: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.gather(*(sender() for _ in range(in_flight)))
        finally:
            stopped.cancel()

    async def open_loop(
        self, *, phase: str, rate: float, seconds: float, pool: int = 64
    ) -> tuple[float, float]:
        """A message every ``1/rate`` s for ``seconds``, replies not awaited; (start, end)."""
        count = max(1, int(rate * seconds))
        await self._feed.prefetch(count)
        idle: list[asyncio.Queue[KeptConnection]] = []
        for replica in range(len(self._webhooks.ports)):
            queue: asyncio.Queue[KeptConnection] = asyncio.LifoQueue()  # the warmest first
            for _ in range(pool):
                queue.put_nowait(KeptConnection(self._webhooks.target(replica)))
            idle.append(queue)

        async def fire(update: dict[str, Any], replica: int, due: float) -> None:
            conn = await idle[replica].get()
            try:
                await self._post(conn, update, replica=replica, phase=phase, due=due)
            finally:
                idle[replica].put_nowait(conn)

        tasks: list[asyncio.Task[None]] = []
        start = time.monotonic()
        for index in range(count):
            due = start + index / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            update = await self._feed.take()
            tasks.append(asyncio.create_task(fire(update, self._webhooks.next_replica(), due)))
        await asyncio.gather(*tasks)
        end = time.monotonic()
        for queue in idle:
            while not queue.empty():
                queue.get_nowait().close()
        return start, end
