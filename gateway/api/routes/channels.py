"""``GET /api/channels``: each chat platform's connection state; the platforms' callbacks.

``POST /telegram/webhook`` is authenticated by Telegram's own scheme, the
``X-Telegram-Bot-Api-Secret-Token`` header set with ``setWebhook``, not by the admin token:
a request without the right secret gets 401 and changes nothing.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.deps import RuntimeDep
from gateway.api.errors import error_response
from gateway.api.openapi_docs import error_responses

router = APIRouter(tags=["channels"])


class ChannelStatus(BaseModel):
    """One chat platform's connection; adapters may add fields of their own."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "state": "connected",
                    "connected": True,
                    "since": "2026-11-24T17:02:41.554000+00:00",
                    "consecutive_failures": 0,
                    "last_error": None,
                    "sent": 118,
                }
            ]
        },
    )

    state: str
    connected: bool
    since: str | None = None
    consecutive_failures: int = 0
    last_error: str | None = None
    sent: int = Field(default=0, description="outbound messages delivered")


class WebhookAck(BaseModel):
    """Telegram's update was kept."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"ok": True}]})

    ok: bool


@router.get(
    "/api/channels",
    summary="Chat platforms and their connection state",
    response_model=dict[str, ChannelStatus],
)
async def list_channels(runtime: RuntimeDep) -> dict[str, dict[str, Any]]:
    """``{name: {"state", "connected", "since", "consecutive_failures", "last_error", ...}}``."""
    return runtime.channel_status()


@router.post(
    "/telegram/webhook",
    summary="Telegram updates (webhook mode)",
    response_model=WebhookAck,
    responses=error_responses(
        {
            400: "the update is not JSON",
            401: "missing or wrong secret token",
            404: "the Telegram channel is not in webhook mode",
        }
    ),
)
async def telegram_webhook(request: Request, runtime: RuntimeDep) -> JSONResponse:
    """Kept in the inbox before this answers 200, so Telegram never has to resend it."""
    settings = runtime.config.config.channels.telegram
    host = runtime.channels
    adapter = host.adapters.get("telegram") if host is not None else None
    if settings is None or settings.mode != "webhook" or adapter is None:
        return error_response(404, "not_found", "the Telegram channel is not in webhook mode")
    expected = settings.secret_token.reveal().encode() if settings.secret_token else b""
    given = request.headers.get("x-telegram-bot-api-secret-token", "").encode()
    if not expected or not hmac.compare_digest(given, expected):
        return error_response(401, "unauthorized", "wrong X-Telegram-Bot-Api-Secret-Token")
    try:
        payload = json.loads(await request.body())
    except ValueError:
        return error_response(400, "invalid_json", "the update is not JSON")
    await adapter.handle_webhook(payload)  # type: ignore[attr-defined]
    return JSONResponse({"ok": True})
