"""``/api/conversations``: every conversation, its history, and ``/reset`` for the operator.

A conversation is named by its key, ``platform:chat[:thread]`` (``telegram:123456``,
``slack:C0123ABC:1700000000.000100``, ``api:alice``); in the path the ``:`` may be sent
as is or as ``%3A``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from core.errors import NotFound
from core.storage.conversation_repo import ConversationState, StoredMessage
from core.storage.paging import PagePosition
from core.types import ConversationKey, SecurityLevel
from gateway.admin_actions import operator_action
from gateway.api.conversation_key import KEY_EXAMPLES, KEY_PATTERN, parse_conversation_key
from gateway.api.deps import RuntimeDep
from gateway.api.openapi_docs import error_responses
from gateway.api.paging import (
    PAGED_HEADERS,
    PAGING_DESCRIPTION,
    Cursor,
    Limit,
    announce_next_page,
    decode_int_cursor,
    decode_time_cursor,
    encode_cursor,
    split_page,
    time_cursor,
)
from gateway.api.routes.approvals import API_OPERATOR
from gateway.runtime import Runtime

router = APIRouter(prefix="/api/conversations", tags=["conversations"])
_LIST = "conversations"
_MESSAGES = "messages"

KeyPath = Annotated[
    str,
    Path(
        description="`platform:chat[:thread]`",
        examples=KEY_EXAMPLES,
        json_schema_extra={"pattern": KEY_PATTERN, "maxLength": 512},
    ),
]
_NOT_FOUND = {404: "no conversation with that key (`conversation_not_found`)"}
_BAD_KEY = {422: "the key is not `platform:chat[:thread]`, or a bad `limit` or `cursor`"}


class ConversationView(BaseModel):
    """A conversation with its size, last activity and /provider, /model choices."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "key": "telegram:123456",
                    "platform": "telegram",
                    "chat": "123456",
                    "thread": None,
                    "message_count": 12,
                    "created_at": "2026-11-20T09:14:03.120000Z",
                    "last_activity_at": "2026-11-24T17:02:41.554000Z",
                    "provider": "claude",
                    "model": None,
                }
            ]
        }
    )

    key: str = Field(description="platform:chat[:thread]")
    platform: str
    chat: str
    thread: str | None
    message_count: int = Field(description="messages kept in the history")
    created_at: datetime
    last_activity_at: datetime
    provider: str | None = Field(description="chosen with /provider here; null: the default")
    model: str | None = Field(description="chosen with /model here; null: the default")


class ToolCallView(BaseModel):
    """A tool call the assistant made."""

    id: str
    name: str
    arguments: dict[str, Any]


class MessageView(BaseModel):
    """One message of a conversation's history."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": 41,
                    "role": "user",
                    "content": "How full is the disk?",
                    "tool_calls": [],
                    "tool_call_id": None,
                    "name": None,
                    "action_id": "5f0c9a3e8b2d4c61a7e9f0b1c2d3e4f5",
                    "tokens": 10,
                    "created_at": "2026-11-24T17:02:41.554000Z",
                }
            ]
        }
    )

    id: int = Field(description="increases with every message kept")
    role: str = Field(description="system, user, assistant or tool")
    content: str
    tool_calls: list[ToolCallView]
    tool_call_id: str | None = Field(description="for a tool result: the call it answers")
    name: str | None
    action_id: str | None = Field(description="the chat action that produced the message")
    tokens: int = Field(description="estimated tokens in a model's context")
    created_at: datetime


class ResetView(BaseModel):
    """What a reset forgot."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"conversation": "telegram:123456", "forgotten": 12}]}
    )

    conversation: str
    forgotten: int = Field(description="messages deleted from the history")


def conversation_view(state: ConversationState) -> ConversationView:
    """A conversation for the API."""
    return ConversationView(
        key=str(state.key),
        platform=state.key.platform,
        chat=state.key.chat,
        thread=state.key.thread,
        message_count=state.message_count,
        created_at=state.created_at,
        last_activity_at=state.updated_at,
        provider=state.provider,
        model=state.model,
    )


def message_view(stored: StoredMessage) -> MessageView:
    """A history message for the API."""
    message = stored.message
    return MessageView(
        id=stored.id,
        role=message.role.value,
        content=message.content,
        tool_calls=[
            ToolCallView(id=c.id, name=c.name, arguments=c.arguments) for c in message.tool_calls
        ],
        tool_call_id=message.tool_call_id,
        name=message.name,
        action_id=stored.action_id,
        tokens=stored.tokens,
        created_at=stored.created_at,
    )


async def _existing(runtime: Runtime, text: str) -> tuple[ConversationKey, ConversationState]:
    key = parse_conversation_key(text)
    state = await runtime.assistant.conversations.get(key)
    if state is None:
        raise NotFound(f"no conversation {str(key)!r}", code="conversation_not_found")
    return key, state


@router.get(
    "",
    summary="Conversations, most recent activity first",
    description="Every conversation the gateway keeps, with its message count, last activity "
    "and the provider or model chosen in it (`/provider`, `/model`). A conversation with new "
    "activity moves to the front: it shows on a fresh first page, not on later ones."
    + PAGING_DESCRIPTION,
    responses={200: {"headers": PAGED_HEADERS}, **error_responses(_BAD_KEY)},
)
async def list_conversations(
    request: Request,
    response: Response,
    runtime: RuntimeDep,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> list[ConversationView]:
    """Newest activity first."""
    after = decode_time_cursor(cursor, _LIST)
    states = await runtime.assistant.conversations.list(limit=limit + 1, after=after)
    page, more = split_page(states, limit)
    if more:
        last = page[-1]
        position = PagePosition(at=last.updated_at, id=str(last.key))
        announce_next_page(request, response, time_cursor(_LIST, position))
    return [conversation_view(s) for s in page]


@router.get(
    "/{key:path}/messages",
    summary="A conversation's history, newest first",
    description="The messages kept for the conversation (what the model sees, before trimming "
    "to the token budget), newest first; each has an `id` that grows with every message."
    + PAGING_DESCRIPTION,
    responses={200: {"headers": PAGED_HEADERS}, **error_responses({**_NOT_FOUND, **_BAD_KEY})},
)
async def list_messages(
    key: KeyPath,
    request: Request,
    response: Response,
    runtime: RuntimeDep,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> list[MessageView]:
    """404 ``conversation_not_found`` for a key never used."""
    before_id = decode_int_cursor(cursor, _MESSAGES)
    conversation, _ = await _existing(runtime, key)
    stored = await runtime.assistant.conversations.page(
        conversation, limit=limit + 1, before_id=before_id
    )
    page, more = split_page(stored, limit)
    if more:
        announce_next_page(request, response, encode_cursor(_MESSAGES, page[-1].id))
    return [message_view(m) for m in page]


@router.post(
    "/{key:path}/reset",
    summary="Forget a conversation (what /reset does)",
    description="Deletes the conversation's history and its /provider and /model choices, "
    "exactly like the `/reset` chat command, in turn with the messages the conversation is "
    "handling. Audited as `conversation.reset` by `operator:api`; the conversation itself "
    "stays listed, with no messages.",
    responses=error_responses({**_NOT_FOUND, 422: "the key is not `platform:chat[:thread]`"}),
)
async def reset_conversation(key: KeyPath, runtime: RuntimeDep) -> ResetView:
    """404 ``conversation_not_found`` for a key never used."""
    conversation, _ = await _existing(runtime, key)
    async with operator_action(
        runtime.approvals,
        "conversation.reset",
        level=SecurityLevel.LOW,
        actor=API_OPERATOR,
        details={"conversation": str(conversation)},
    ):
        forgotten = await runtime.orchestrator.reset(conversation, actor=API_OPERATOR)
    return ResetView(conversation=str(conversation), forgotten=forgotten)
