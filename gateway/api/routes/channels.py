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

from gateway.api.deps import RuntimeDep
from gateway.api.errors import error_response

router = APIRouter(tags=["channels"])


@router.get("/api/channels", summary="Chat platforms and their connection state")
async def list_channels(runtime: RuntimeDep) -> dict[str, dict[str, Any]]:
    """``{name: {"state", "connected", "since", "consecutive_failures", "last_error", ...}}``."""
    return runtime.channel_status()


@router.post(
    "/telegram/webhook",
    summary="Telegram updates (webhook mode)",
    responses={401: {"description": "missing or wrong secret token"}},
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
