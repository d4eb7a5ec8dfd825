"""Discord's wire objects for the fake (users, messages, guilds, interactions) and its checks."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.responses import JSONResponse

Payload = dict[str, Any]
DISCORD_EPOCH_MS = 1_420_070_400_000
CONTENT_LIMIT = 2000
CUSTOM_ID_LIMIT = 100
EPHEMERAL, LOADING = 1 << 6, 1 << 7
INTERACTION_DEADLINE_S = 3.0
VIA = "1.1 google"  # Discord's answers come through Google's load balancer
_ERRORS = {403: ("Missing Permissions", 50013), 404: ("Unknown Channel", 10003)}


class ApiError(Exception):
    """An error answer in Discord's shape: ``{"message", "code", "errors"?}``."""

    def __init__(self, status: int, code: int, message: str, errors: Payload | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.errors = status, code, message, errors

    @classmethod
    def invalid(cls, field_name: str, problem: str) -> ApiError:
        """400 Invalid Form Body (50035) naming the field."""
        errors = {field_name: {"_errors": [{"code": "INVALID", "message": problem}]}}
        return cls(400, 50035, "Invalid Form Body", errors)

    def body(self) -> Payload:
        body: Payload = {"message": self.message, "code": self.code}
        if self.errors is not None:
            body["errors"] = self.errors
        return body


class Snowflakes:
    """Discord ids: milliseconds since 2015 in the high bits, a counter in the low ones."""

    def __init__(self) -> None:
        self._count = 0

    def next(self) -> str:
        self._count += 1
        millis = int(time.time() * 1000) - DISCORD_EPOCH_MS
        return str((millis << 22) | (self._count & 0xFFF))


def timestamp_of(snowflake: str) -> str:
    millis = (int(snowflake) >> 22) + DISCORD_EPOCH_MS
    return datetime.fromtimestamp(millis / 1000, UTC).isoformat()


def user(user_id: str, name: str, *, bot: bool = False) -> Payload:
    found: Payload = {"id": user_id, "username": name, "discriminator": "0"}
    found |= {"global_name": name.title(), "avatar": None, "public_flags": 0}
    if bot:
        found["bot"] = True
    return found


def member(of: Payload) -> Payload:
    return {
        "user": of,
        "roles": [],
        "joined_at": "2024-01-01T00:00:00+00:00",
        "deaf": False,
        "mute": False,
        "flags": 0,
        "nick": None,
        "avatar": None,
        "premium_since": None,
        "pending": False,
        "permissions": "2248473465835073",
    }


def message(
    *,
    id: str,
    channel: Payload,
    author: Payload,
    content: str,
    mentions: Sequence[Payload] = (),
    components: Sequence[Payload] = (),
    reference: Payload | None = None,
    flags: int = 0,
    edited: str | None = None,
    interaction_id: str | None = None,
) -> Payload:
    """A message object as the Gateway dispatches it and REST answers it."""
    found: Payload = {
        "id": id,
        "channel_id": channel["id"],
        "author": author,
        "content": content,
        "timestamp": timestamp_of(id),
        "edited_timestamp": edited,
        "tts": False,
        "mention_everyone": False,
        "mentions": list(mentions),
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "pinned": False,
        "type": 19 if reference else (20 if interaction_id else 0),
        "flags": flags,
        "components": list(components),
    }
    if reference is not None:
        found["message_reference"] = {"type": 0, "channel_id": channel["id"], **reference}
    if "guild_id" in channel:
        found["guild_id"] = channel["guild_id"]
        if not author.get("bot"):
            found["member"] = {k: v for k, v in member(author).items() if k != "user"}
    if interaction_id is not None:
        found["interaction_metadata"] = {"id": interaction_id, "type": 2, "user": author}
    return found


@dataclass
class SentMessage:
    """A message the bot sent, as the fake keeps it."""

    id: str
    channel_id: str
    content: str
    components: list[Payload]
    allowed_mentions: Payload | None
    nonce: str | None
    flags: int = 0
    message_reference: Payload | None = None
    interaction_id: str | None = None
    edits: list[Payload] = field(default_factory=list)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def buttons(self) -> list[Payload]:
        return [button for row in self.components for button in row.get("components", ())]

    @property
    def pings_everyone(self) -> bool:
        """Would Discord notify @everyone/@here for this message?"""
        parse = (self.allowed_mentions or {"parse": ["everyone"]}).get("parse", [])
        said = "@everyone" in self.content or "@here" in self.content
        return said and "everyone" in parse

    def edit(self, body: Payload) -> None:
        self.edits.append(body)
        if "content" in body:
            self.content = body["content"] or ""
        if "components" in body:
            self.components = list(body["components"] or [])
        if "allowed_mentions" in body:
            self.allowed_mentions = body["allowed_mentions"]

    def payload(self, author: Payload) -> Payload:
        channel = {"id": self.channel_id}
        return message(
            id=self.id,
            channel=channel,
            author=author,
            content=self.content,
            components=self.components,
            reference=self.message_reference,
            flags=self.flags,
            edited=datetime.now(UTC).isoformat() if self.edits else None,
            interaction_id=self.interaction_id,
        )


@dataclass
class FakeInteraction:
    """An interaction the fake dispatched, and how the bot answered it."""

    id: str
    token: str
    type: int  # 2: slash command, 3: button
    channel_id: str
    created: float = field(default_factory=time.monotonic)
    responses: list[tuple[float, Payload]] = field(default_factory=list)  # (after s, body)
    original: SentMessage | None = None
    followups: list[SentMessage] = field(default_factory=list)

    @property
    def answered_after_s(self) -> float | None:
        return self.responses[0][0] if self.responses else None

    @property
    def response_type(self) -> int | None:
        return self.responses[0][1].get("type") if self.responses else None

    @property
    def ephemeral_texts(self) -> list[str]:
        """What only the presser saw: an ephemeral response and ephemeral follow-ups."""
        shown = [self.original] if self.original is not None else []
        return [m.content for m in shown + self.followups if m.ephemeral]


def check_message(body: Payload, *, partial: bool) -> None:
    """Discord's checks of a message body; raises ``ApiError``."""
    content = body.get("content")
    if content is not None and len(content) > CONTENT_LIMIT:
        raise ApiError.invalid("content", f"Must be {CONTENT_LIMIT} or fewer in length.")
    components = body.get("components")
    if not partial and not content and not components and not body.get("embeds"):
        raise ApiError(400, 50006, "Cannot send an empty message")
    if components is None:
        return
    if not isinstance(components, list) or len(components) > 5:
        raise ApiError.invalid("components", "Must be 5 or fewer in length.")
    seen: set[str] = set()
    for row in components:
        if row.get("type") != 1 or not 1 <= len(row.get("components") or ()) <= 5:
            raise ApiError.invalid("components", "Top-level components must be action rows")
        for button in row["components"]:
            custom_id = button.get("custom_id")
            if button.get("type") != 2 or button.get("style") not in (1, 2, 3, 4):
                raise ApiError.invalid("components", "Only non-link buttons are expected here")
            if not custom_id or len(custom_id) > CUSTOM_ID_LIMIT or custom_id in seen:
                raise ApiError.invalid("custom_id", "custom_id: 1-100 characters, unique")
            if len(button.get("label") or "") > 80:
                raise ApiError.invalid("label", "Must be 80 or fewer in length.")
            seen.add(custom_id)


def ratelimit_headers(
    route: str, *, remaining: int = 4, reset_after: float = 1.0
) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
        "X-RateLimit-Reset-After": f"{reset_after:.3f}",
        "X-RateLimit-Bucket": f"fake-{abs(hash(route)) % 10**8:08d}",
        "Via": VIA,
    }


def failure_response(status: int, retry_after: float, global_: bool) -> JSONResponse:
    """A 429 as Discord sends it (body and headers), or another error in Discord's shape."""
    if status != 429:
        message, code = _ERRORS.get(status, (f"{status}: Internal Server Error", 0))
        return JSONResponse({"message": message, "code": code}, status, headers={"Via": VIA})
    headers = ratelimit_headers("limited", remaining=0, reset_after=retry_after)
    headers |= {"Retry-After": str(math.ceil(retry_after)), "X-RateLimit-Scope": "user"}
    if global_:
        headers["X-RateLimit-Global"] = "true"
    body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": global_}
    return JSONResponse(body, 429, headers=headers)


def ready(
    *, user: Payload, session_id: str, resume_url: str, guild_id: str, app_id: str
) -> Payload:
    return {
        "v": 10,
        "user": user,
        "guilds": [{"id": guild_id, "unavailable": True}],
        "session_id": session_id,
        "session_type": "normal",
        "resume_gateway_url": resume_url,
        "application": {"id": app_id, "flags": 0},
        "private_channels": [],
        "relationships": [],
        "presences": [],
        "geo_ordered_rtc_regions": [],
        "user_settings": {},
    }


def guild(guild_id: str, *, channels: list[Payload], bot: Payload, owner: Payload) -> Payload:
    everyone = {"id": guild_id, "name": "@everyone", "permissions": "1071698660929"}
    everyone |= {"position": 0, "color": 0, "hoist": False, "managed": False}
    everyone |= {"mentionable": False, "flags": 0}
    return {
        "id": guild_id,
        "name": "Switchboard Test",
        "icon": None,
        "owner_id": owner["id"],
        "roles": [everyone],
        "emojis": [],
        "stickers": [],
        "features": [],
        "channels": [
            {"position": index, "permission_overwrites": [], "nsfw": False, **channel}
            for index, channel in enumerate(channels)
        ],
        "threads": [],
        "members": [member(bot)],
        "member_count": 2,
        "large": False,
        "unavailable": False,
        "joined_at": "2024-01-01T00:00:00+00:00",
        "verification_level": 0,
        "default_message_notifications": 1,
        "explicit_content_filter": 0,
        "mfa_level": 0,
        "premium_tier": 0,
        "preferred_locale": "en-US",
        "voice_states": [],
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
    }


def application(app_id: str, *, bot: Payload, owner: Payload) -> Payload:
    return {
        "id": app_id,
        "name": "Switchboard",
        "icon": None,
        "description": "",
        "summary": "",
        "bot_public": True,
        "bot_require_code_grant": False,
        "verify_key": "0" * 64,
        "owner": owner,
        "team": None,
        "flags": 1 << 19 | 1 << 23,  # message content + presence intents allowed (limited)
        "bot": bot,
        "rpc_origins": [],
        "interactions_endpoint_url": None,
    }


def command(body: Payload, *, app_id: str, ids: Snowflakes) -> Payload:
    """An application command as ``PUT /applications/{id}/commands`` answers it."""
    if not body.get("name") or not body.get("description"):
        raise ApiError.invalid("name", "Commands need a name and a description")
    return {"id": ids.next(), "application_id": app_id, "version": ids.next(), "type": 1, **body}


def interaction(
    found: FakeInteraction, *, app_id: str, channel: Payload, user: Payload, data: Payload
) -> Payload:
    """INTERACTION_CREATE: who did what where, and the token to answer with."""
    payload: Payload = {
        "id": found.id,
        "application_id": app_id,
        "type": found.type,
        "data": data,
        "channel_id": channel["id"],
        "channel": channel,
        "token": found.token,
        "version": 1,
        "app_permissions": "2248473465835073",
        "locale": "en-US",
        "entitlements": [],
        "attachment_size_limit": 10 * 1024 * 1024,
    }
    if "guild_id" in channel:
        payload |= {"guild_id": channel["guild_id"], "member": member(user)}
        payload |= {"guild_locale": "en-US", "context": 0}
        payload["authorizing_integration_owners"] = {"0": channel["guild_id"]}
    else:
        payload |= {"user": user, "context": 1, "authorizing_integration_owners": {"0": "0"}}
    return payload


def callback_response(found: FakeInteraction, kind: int, *, bot: Payload) -> Payload:
    """What ``POST .../callback?with_response=true`` answers."""
    created = found.original
    summary: Payload = {"id": found.id, "type": found.type}
    resource: Payload = {"type": kind}
    if created is not None:
        summary |= {
            "response_message_id": created.id,
            "response_message_ephemeral": created.ephemeral,
        }
        summary["response_message_loading"] = kind == 5
        resource["message"] = created.payload(bot)
    return {"interaction": summary, "resource": resource}
