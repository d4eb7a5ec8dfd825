"""A loopback fake of the Telegram Bot API for one bot, spoken to by the real aiogram ``Bot``.

Point aiogram at it with ``AiohttpSession(api=TelegramAPIServer.from_base(url))``: methods are
served at ``/bot{token}/{method}`` (names case-insensitive; form data, JSON or a query string)
and answered ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code", "description",
"parameters"?}``. It refuses what the real API refuses where an adapter bug would show: a wrong
token (401), getUpdates while a webhook is set or another getUpdates waits (409), a chat the bot
has never seen, markup that does not parse, empty or too long text, callback_data outside 1-64
bytes, edits that change nothing, replies to unknown messages, a query answered twice. As on
Telegram, editMessageText without ``reply_markup`` drops the inline keyboard and
``allowed_updates`` filters the updates queued after it is set. Group privacy mode is not
modelled: every group message reaches the bot. Wire rules live in ``telegram_wire``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes import telegram_wire as wire
from tests.fakes.telegram_wire import ApiError, Rendered, SentMessage, bad_request

DEFAULT_TOKEN = "123456:TEST-token"
BOT_USERNAME = "switchboard_bot"
FIRST_UPDATE_ID = 1000
_METHODS = {  # the Bot API's case-insensitive method name -> the handler's name
    name.replace("_", ""): name
    for name in ("get_me", "get_updates", "set_webhook", "delete_webhook", "get_webhook_info")
    + ("send_message", "edit_message_text", "edit_message_reply_markup", "delete_message")
    + ("answer_callback_query", "send_chat_action")
}
Params = dict[str, Any]


class FakeTelegram:
    """The state of one bot's Bot API, with the controls tests use to play the user."""

    def __init__(self, token: str = DEFAULT_TOKEN, *, clock: Callable[[], float] = time.time):
        self.token = token
        prefix = token.split(":", 1)[0]
        bot_id = int(prefix) if prefix.isdigit() else 123456  # aiogram's bot.id reads the token
        self.bot_user: dict[str, Any] = {"id": bot_id, "is_bot": True}
        self.bot_user |= {"first_name": "Switchboard", "username": BOT_USERNAME}
        self.calls: list[tuple[str, Params]] = []
        self.callback_answers: list[Params] = []
        self.chat_actions: list[tuple[int, str]] = []
        self.webhook_url = ""
        self.webhook_secret: str | None = None
        self.allowed_updates: list[str] = []
        self._clock = clock
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(FIRST_UPDATE_ID)
        self._query_ids = itertools.count(1)
        self._wakeup = asyncio.Event()
        self._poll_generation = 0
        self._chats: dict[int, dict[str, Any]] = {}
        self._users: dict[int, dict[str, Any]] = {}
        self._last_message_id: dict[int, int] = {}
        self._sent: dict[tuple[int, int], SentMessage] = {}
        self._inbound: dict[tuple[int, int], dict[str, Any]] = {}
        self._open_queries: set[str] = set()
        self._failures: dict[str, deque[ApiError]] = {}

    # --- test controls -------------------------------------------------------------------

    def open_chat(
        self,
        chat_id: int,
        *,
        chat_type: str = "private",
        title: str | None = None,
        first_name: str = "Alice",
        username: str | None = None,
        is_forum: bool = False,
    ) -> dict[str, Any]:
        """Make a chat known to the bot without a message (as after a /start long ago)."""
        chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat |= {"first_name": first_name} | ({"username": username} if username else {})
        else:
            chat |= {"title": title or f"Test {chat_type}"} | (
                {"is_forum": True} if is_forum else {}
            )
        self._chats[chat_id] = chat
        return chat

    def user_message(
        self,
        chat_id: int,
        user_id: int,
        text: str,
        *,
        chat_type: str = "private",
        username: str | None = None,
        first_name: str = "Alice",
        reply_to_message_id: int | None = None,
        entities: list[dict[str, Any]] | None = None,
        message_thread_id: int | None = None,
        is_bot: bool = False,
    ) -> dict[str, Any]:
        """Queue an Update with a message a user wrote; returns the Update.

        Without ``entities``, Telegram's own are added: ``bot_command`` for a leading
        ``/command`` and ``mention`` for each ``@username`` (the bot's included).
        """
        user: dict[str, Any] = {"id": user_id, "is_bot": is_bot, "first_name": first_name}
        self._users[user_id] = user | ({"username": username} if username else {})
        forum = message_thread_id is not None and chat_type == "supergroup"
        chat = self._chats.get(chat_id)
        if chat is None or chat["type"] != chat_type or (forum and not chat.get("is_forum")):
            chat = self.open_chat(
                chat_id,
                chat_type=chat_type,
                first_name=first_name,
                username=username,
                is_forum=forum,
            )
        message_id = self._new_message_id(chat_id)
        message: dict[str, Any] = {"message_id": message_id, "from": self._users[user_id]}
        message |= {"chat": chat, "date": int(self._clock()), "text": text}
        if found := wire.auto_entities(text) if entities is None else entities:
            message["entities"] = found
        if reply_to_message_id is not None:
            replied = self._message_dict_by_id(chat_id, reply_to_message_id)
            if replied is None:
                raise ValueError(f"no message {reply_to_message_id} in chat {chat_id}")
            message["reply_to_message"] = replied
        if message_thread_id is not None:
            message["message_thread_id"] = message_thread_id
            message |= {"is_topic_message": True} if forum else {}
        self._inbound[(chat_id, message_id)] = message
        return self._enqueue("message", message)

    def callback(self, chat_id: int, user_id: int, message_id: int, data: str) -> dict[str, Any]:
        """Queue a callback_query Update: ``user_id`` pressed a button on a sent message."""
        sent = self._sent.get((chat_id, message_id))
        if sent is None or sent.deleted:
            raise ValueError(f"the bot sent no message {message_id} in chat {chat_id}")
        query_id = f"{self.bot_user['id']}{next(self._query_ids):08d}"
        self._open_queries.add(query_id)
        user = self._users.get(user_id) or {"id": user_id, "is_bot": False, "first_name": "Alice"}
        query = {"id": query_id, "from": user, "message": self._message_dict(sent)}
        query |= {"chat_instance": f"-{abs(chat_id)}0", "data": data}
        return self._enqueue("callback_query", query)

    def fail_next(
        self,
        method: str,
        status: int = 429,
        retry_after: int | None = 1,
        description: str | None = None,
    ) -> None:
        """Make the next call of ``method`` fail once (calls queue up); 429s carry retry_after."""
        if status == 429:
            description = description or f"Too Many Requests: retry after {retry_after}"
        error = ApiError(
            status,
            description or wire.DEFAULT_DESCRIPTIONS.get(status, "Error"),
            retry_after=retry_after if status == 429 else None,
        )
        self._failures.setdefault(method.lower(), deque()).append(error)

    def messages(self, chat_id: int) -> list[SentMessage]:
        """What the bot sent to ``chat_id``, oldest first, deleted ones included (flagged)."""
        return sorted(
            (m for m in self._sent.values() if m.chat_id == chat_id), key=lambda m: m.message_id
        )

    @property
    def pending(self) -> list[dict[str, Any]]:
        """Updates not yet confirmed by a getUpdates offset."""
        return list(self._updates)

    # --- state ---------------------------------------------------------------------------

    def _enqueue(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": next(self._update_ids), kind: payload}
        if not self.allowed_updates or kind in self.allowed_updates:
            self._updates.append(update)
            self._wake()
        return update

    def _wake(self) -> None:
        self._wakeup.set()
        self._wakeup = asyncio.Event()

    def _new_message_id(self, chat_id: int) -> int:
        # one sequence per chat, shared by the user's messages and the bot's, as in Telegram
        self._last_message_id[chat_id] = self._last_message_id.get(chat_id, 0) + 1
        return self._last_message_id[chat_id]

    def _message_dict_by_id(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        sent = self._sent.get((chat_id, message_id))
        if sent is not None and not sent.deleted:
            return self._message_dict(sent, nested=True)
        inbound = self._inbound.get((chat_id, message_id))
        return {k: v for k, v in inbound.items() if k != "reply_to_message"} if inbound else None

    def _message_dict(self, sent: SentMessage, *, nested: bool = False) -> dict[str, Any]:
        message: dict[str, Any] = {"message_id": sent.message_id, "from": self.bot_user}
        message |= {"chat": self._chats[sent.chat_id], "date": sent.date, "text": sent.plain}
        if sent.rendered.entities:
            message["entities"] = list(sent.rendered.entities)
        if sent.reply_markup and "inline_keyboard" in sent.reply_markup:
            message["reply_markup"] = sent.reply_markup
        if sent.edit_date is not None:
            message["edit_date"] = sent.edit_date
        if sent.message_thread_id is not None:
            message["message_thread_id"] = sent.message_thread_id
        replied = None if nested or sent.reply_to is None else sent.reply_to
        if replied is not None and (target := self._message_dict_by_id(sent.chat_id, replied)):
            message["reply_to_message"] = target
        return message

    def _chat_id(self, params: Params) -> int:
        chat_id = params.get("chat_id")
        if not isinstance(chat_id, int) or chat_id not in self._chats:
            raise bad_request("chat not found")
        return chat_id

    def _reply_target(self, chat_id: int, params: Params) -> int | None:
        reply = params.get("reply_parameters") or {}
        target = reply.get("message_id", params.get("reply_to_message_id"))
        if target is None:
            return None
        if self._message_dict_by_id(reply.get("chat_id", chat_id), int(target)) is not None:
            return int(target)
        if reply.get("allow_sending_without_reply", params.get("allow_sending_without_reply")):
            return None
        raise bad_request("message to be replied not found")

    def _own_message(self, params: Params) -> SentMessage:
        if "inline_message_id" in params:
            raise bad_request("message to edit not found")  # inline messages are not modelled
        key = (params.get("chat_id"), params.get("message_id"))
        sent = self._sent.get(key)  # type: ignore[arg-type]
        if sent is not None and not sent.deleted:
            return sent
        if key in self._inbound:
            raise bad_request("message can't be edited")
        raise bad_request("message to edit not found")

    def _edit(self, sent: SentMessage, params: Params, rendered: Rendered) -> dict[str, Any]:
        markup = wire.check_reply_markup(params.get("reply_markup"))
        if (rendered, markup) == (sent.rendered, sent.reply_markup):
            raise bad_request(wire.NOT_MODIFIED)
        sent.edits.append(wire.MessageVersion(sent.text, sent.parse_mode, sent.reply_markup))
        if rendered is not sent.rendered:
            sent.text, sent.parse_mode = params.get("text", ""), params.get("parse_mode")
        sent.rendered, sent.reply_markup = rendered, markup
        sent.edit_date = int(self._clock())
        return self._message_dict(sent)

    # --- methods -------------------------------------------------------------------------

    def get_me(self, params: Params) -> dict[str, Any]:
        flags = {"can_join_groups": True, "can_read_all_group_messages": False}
        return self.bot_user | flags | {"supports_inline_queries": False}

    async def get_updates(self, params: Params, request: Request) -> list[dict[str, Any]]:
        if self.webhook_url:
            raise ApiError(409, wire.WEBHOOK_CONFLICT)
        if isinstance(params.get("allowed_updates"), list):
            self.allowed_updates = list(params["allowed_updates"])
        offset = params.get("offset")
        if isinstance(offset, int):  # confirms every update before it; negative: keep the last N
            kept = self._updates[offset:] if offset < 0 else self._updates
            self._updates = [u for u in kept if offset < 0 or u["update_id"] >= offset]
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(int(params.get("timeout") or 0), 0)
        self._poll_generation += 1
        generation = self._poll_generation
        self._wake()  # an earlier waiting getUpdates is terminated, as on the real server
        while True:
            if generation != self._poll_generation:
                raise ApiError(409, wire.POLL_CONFLICT)
            remaining = deadline - loop.time()
            if self._updates or remaining <= 0 or self.webhook_url:
                return self._updates[:limit]
            if not await self._wait_for_wakeup(request, remaining):
                return []  # the client went away; nobody reads this answer

    async def _wait_for_wakeup(self, request: Request, seconds: float) -> bool:
        """Wait for a new update or ``seconds``; False when the client disconnected first."""

        async def disconnected() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass

        woken = asyncio.ensure_future(self._wakeup.wait())
        gone = asyncio.ensure_future(disconnected())
        try:
            done, _ = await asyncio.wait(
                {woken, gone}, timeout=seconds, return_when="FIRST_COMPLETED"
            )
        finally:
            woken.cancel()
            gone.cancel()
        return gone not in done

    def set_webhook(self, params: Params) -> bool:
        url, secret = params.get("url") or "", params.get("secret_token")
        if url and not url.startswith("https://"):
            raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
        if secret is not None and not (1 <= len(secret) <= 256 and set(secret) <= allowed):
            raise bad_request("secret token contains unallowed characters")
        self.webhook_url, self.webhook_secret = url, secret if url else None
        if isinstance(params.get("allowed_updates"), list):
            self.allowed_updates = list(params["allowed_updates"])
        self._updates = [] if params.get("drop_pending_updates") else self._updates
        self._wake()
        return True

    def delete_webhook(self, params: Params) -> bool:
        self.webhook_url, self.webhook_secret = "", None
        self._updates = [] if params.get("drop_pending_updates") else self._updates
        return True

    def get_webhook_info(self, params: Params) -> dict[str, Any]:
        info = {"url": self.webhook_url, "has_custom_certificate": False}
        info |= {"pending_update_count": len(self._updates)}
        if self.webhook_url and self.allowed_updates:
            info["allowed_updates"] = self.allowed_updates
        return info

    def send_message(self, params: Params) -> dict[str, Any]:
        chat_id = self._chat_id(params)
        rendered = wire.checked_text(params, too_long="message is too long")
        markup = wire.check_reply_markup(params.get("reply_markup"))
        sent = SentMessage(
            chat_id=chat_id,
            message_id=0,
            text=params.get("text", ""),
            parse_mode=params.get("parse_mode"),
            rendered=rendered,
            reply_markup=markup,
            reply_to=self._reply_target(chat_id, params),
            message_thread_id=params.get("message_thread_id"),
            date=int(self._clock()),
        )
        sent.message_id = self._new_message_id(chat_id)  # only once every check has passed
        self._sent[(chat_id, sent.message_id)] = sent
        return self._message_dict(sent)

    def edit_message_text(self, params: Params) -> dict[str, Any]:
        sent = self._own_message(params)
        return self._edit(sent, params, wire.checked_text(params, too_long="MESSAGE_TOO_LONG"))

    def edit_message_reply_markup(self, params: Params) -> dict[str, Any]:
        sent = self._own_message(params)
        return self._edit(sent, params, sent.rendered)

    def delete_message(self, params: Params) -> bool:
        key = (params.get("chat_id"), params.get("message_id"))
        sent = self._sent.get(key)  # type: ignore[arg-type]
        if sent is not None and not sent.deleted:
            sent.deleted = True
        elif self._inbound.pop(key, None) is None:  # type: ignore[arg-type]
            raise bad_request("message to delete not found")
        return True

    def answer_callback_query(self, params: Params) -> bool:
        query_id = params.get("callback_query_id")
        if query_id not in self._open_queries:
            detail = "query is too old and response timeout expired or query ID is invalid"
            raise bad_request(detail)
        if len(params.get("text") or "") > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        self._open_queries.discard(query_id)
        self.callback_answers.append(params)
        return True

    def send_chat_action(self, params: Params) -> bool:
        chat_id = self._chat_id(params)
        if params.get("action") not in wire.CHAT_ACTIONS:
            raise bad_request("wrong parameter action in request")
        self.chat_actions.append((chat_id, params["action"]))
        return True

    async def call(self, method: str, *, token: str, params: Params, request: Request) -> Any:
        """Run one Bot API method; raises ApiError for an error answer."""
        if token != self.token:
            raise ApiError(401, "Unauthorized")
        name = method.lower()
        if name not in _METHODS:
            raise ApiError(404, "Not Found")
        if self._failures.get(name):
            raise self._failures[name].popleft()
        if name == "getupdates":
            return await self.get_updates(params, request)
        return getattr(self, _METHODS[name])(params)


def make_app(fake: FakeTelegram) -> Starlette:
    """The fake as an ASGI app, recording every request in ``fake.calls``."""

    async def method(request: Request) -> Response:
        name, token = request.path_params["method"], request.path_params["token"]
        try:
            content_type = request.headers.get("content-type", "")
            params = wire.decode_params(content_type, await request.body(), request.query_params)
        except ApiError as error:
            fake.calls.append((name, {}))
            return JSONResponse(error.body(), status_code=error.status)
        fake.calls.append((name, params))
        try:
            result = await fake.call(name, token=token, params=params, request=request)
        except ApiError as error:
            return JSONResponse(error.body(), status_code=error.status)
        return JSONResponse({"ok": True, "result": result})

    return Starlette(routes=[Route("/bot{token}/{method}", method, methods=["GET", "POST"])])
