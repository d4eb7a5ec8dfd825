"""Which conversation and action the code is working on, for every log line it writes.

The orchestrator, the turn engine, tool calls and approvals open a ``log_context`` around
their work; the gateway's log formatter reads ``current()`` and adds ``conversation`` and
``action_id`` to each line logged inside, whichever module logs it (httpx, SQLAlchemy, a
tool). Context variables follow the asyncio task, so concurrent conversations never mix:
a task started inside a context inherits it.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from types import TracebackType

_conversation: ContextVar[str | None] = ContextVar("switchboard_conversation", default=None)
_action_id: ContextVar[str | None] = ContextVar("switchboard_action_id", default=None)


class log_context:  # lower case: used like contextlib's context managers
    """Lines logged inside carry ``conversation`` and ``action_id`` (None: left as it was).

    Usable as ``with`` and as ``async with`` (next to an async lock in one statement).
    """

    __slots__ = ("_action_id", "_conversation", "_tokens")

    def __init__(self, *, conversation: object | None = None, action_id: str | None = None):
        self._conversation = None if conversation is None else str(conversation)
        self._action_id = action_id
        self._tokens: list[tuple[ContextVar[str | None], Token[str | None]]] = []

    def __enter__(self) -> None:
        if self._conversation is not None:
            self._tokens.append((_conversation, _conversation.set(self._conversation)))
        if self._action_id is not None:
            self._tokens.append((_action_id, _action_id.set(self._action_id)))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        while self._tokens:
            var, token = self._tokens.pop()
            var.reset(token)

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def current() -> tuple[str | None, str | None]:
    """(conversation, action_id) of the code running now; None where none is set."""
    return _conversation.get(), _action_id.get()
