"""The Telegram Bot API fake as its own process, with the benchmark's two extra routes.

    .venv/bin/python -m bench.pipeline.telegram_server PORT TOKEN [--chats N]

It serves the fake of ``tests/fakes/telegram_api.py`` unchanged under ``/bot{token}/...``
(uvicorn, this process alone), so the time it stamps on each reply is not delayed by the
load generator's own event loop. Added here, not in the fake, because only the benchmark
needs them:

- ``POST /_bench/updates`` with ``{"count": n}``: ``n`` user messages made by the fake's own
  ``user_message`` (so the chat, the user and the message id are known to it, and the
  Update has Telegram's real shape), each in a new private chat, or round-robin over
  ``--chats`` chats. Answers the Updates; the load generator POSTs them to the webhook.
- ``GET /_bench/replies?after=K&wait=S``: the replies recorded from index ``K`` on (waiting
  up to ``S`` seconds for the first one), each with its ``time.monotonic()`` stamp, a clock
  every process of this machine shares.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from tests.fakes.telegram_api import FakeTelegram, Params, make_app

FIRST_CHAT_ID = 10_000_000
USER_TEXT = "bench message {number}."  # the full stop: "message 1." is not in "message 10."


class TimedTelegram(FakeTelegram):
    """The fake, recording when each sendMessage and editMessageText was accepted."""

    def __init__(self, token: str, *, chats: int) -> None:
        super().__init__(token)
        self.replies: list[dict[str, Any]] = []
        self._chats_in_turn = chats
        self._made = 0
        self._recorded = asyncio.Event()

    def make_updates(self, count: int) -> list[dict[str, Any]]:
        """``count`` user messages, each in a fresh chat or the next of the fixed chats."""
        updates = []
        for _ in range(count):
            turn = self._made % self._chats_in_turn if self._chats_in_turn else self._made
            chat = FIRST_CHAT_ID + turn
            text = USER_TEXT.format(number=self._made)
            self._made += 1
            updates.append(self.user_message(chat, chat, text, first_name=f"User {turn}"))
        # The fake also queues them for getUpdates; in webhook mode nobody ever fetches them.
        self._updates.clear()
        return updates

    def send_message(self, params: Params) -> dict[str, Any]:
        result = super().send_message(params)
        reply = params.get("reply_parameters") or {}
        self._record(
            "sendMessage",
            params,
            result,
            reply_to=reply.get("message_id", params.get("reply_to_message_id")),
        )
        return result

    def edit_message_text(self, params: Params) -> dict[str, Any]:
        result = super().edit_message_text(params)
        self._record("editMessageText", params, result, reply_to=None)
        return result

    def _record(
        self, method: str, params: Params, result: dict[str, Any], *, reply_to: Any
    ) -> None:
        self.replies.append(
            {
                "at": time.monotonic(),
                "method": method,
                "chat_id": result["chat"]["id"],
                "message_id": result["message_id"],
                "reply_to": int(reply_to) if reply_to is not None else None,
                "parse_mode": params.get("parse_mode"),
                "text": result.get("text", ""),
            }
        )
        self._recorded.set()
        self._recorded = asyncio.Event()

    async def replies_after(self, index: int, *, wait_s: float) -> list[dict[str, Any]]:
        """The replies from ``index`` on, waiting up to ``wait_s`` for one if there is none."""
        if len(self.replies) <= index and wait_s > 0:
            try:
                await asyncio.wait_for(self._recorded.wait(), timeout=wait_s)
            except TimeoutError:
                pass
        return self.replies[index:]


def bench_app(fake: TimedTelegram) -> Starlette:
    """The fake's app, plus the update factory and the reply read-back."""

    async def updates(request: Request) -> JSONResponse:
        count = int((await request.json()).get("count", 1))
        return JSONResponse(fake.make_updates(count))

    async def replies(request: Request) -> JSONResponse:
        after = int(request.query_params.get("after", "0"))
        wait_s = float(request.query_params.get("wait", "0"))
        found = await fake.replies_after(after, wait_s=wait_s)
        return JSONResponse({"next": after + len(found), "replies": found})

    return Starlette(
        routes=[
            Route("/_bench/updates", updates, methods=["POST"]),
            Route("/_bench/replies", replies, methods=["GET"]),
            Mount("/", app=make_app(fake)),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument("token")
    parser.add_argument("--chats", type=int, default=0, help="0: a new chat per message")
    args = parser.parse_args()
    fake = TimedTelegram(args.token, chats=args.chats)
    uvicorn.run(
        bench_app(fake),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        ws="none",
    )


if __name__ == "__main__":
    main()
