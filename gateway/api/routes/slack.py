"""``POST /slack/events``: Slack's Events API and interactivity requests (HTTP mode).

One URL for both, as Slack allows: events come as JSON, button presses as a form with a
``payload`` field. Authenticated by Slack's own scheme, the v0 signature over
``v0:{X-Slack-Request-Timestamp}:{body}`` with the signing secret, not by the admin token;
the Slack channel (slack-bolt) checks it and the 5-minute window on the raw body, so a
forged or stale request gets 401 and changes nothing. The event is in the inbox before
this answers 200, so Slack never has to resend it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway.api.deps import RuntimeDep
from gateway.api.errors import error_response
from gateway.api.openapi_docs import error_responses

router = APIRouter(tags=["channels"])

MAX_BODY_BYTES = 1_000_000  # Slack's events and payloads are a few kB


@runtime_checkable
class SlackEventsReceiver(Protocol):
    """What the route needs from the Slack channel."""

    async def handle_http(
        self, body: bytes, headers: Mapping[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        """Verify and dispatch one request; returns status, headers and body to answer."""
        ...


@router.post(
    "/slack/events",
    summary="Slack Events API and interactivity (HTTP mode)",
    response_class=Response,
    responses={
        200: {
            "description": "Slack's acknowledgement (a URL verification answers its challenge)",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "examples": [{"challenge": "3eZbrw1aBm2rZgRNFdxV"}],
                    }
                }
            },
        },
        **error_responses(
            {
                401: "missing, wrong or stale Slack signature",
                404: "the Slack channel is not in HTTP mode",
                413: "a Slack request is at most 1 MB",
            }
        ),
    },
)
async def slack_events(request: Request, runtime: RuntimeDep) -> Response:
    """Verified by Slack's signature; answered once the event is kept."""
    settings = runtime.config.config.channels.slack
    host = runtime.channels
    adapter = host.adapters.get("slack") if host is not None else None
    if settings is None or settings.mode != "http" or not isinstance(adapter, SlackEventsReceiver):
        return error_response(404, "not_found", "the Slack channel is not in HTTP mode")
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return error_response(413, "too_large", "a Slack request is at most 1 MB")
    status, headers, content = await adapter.handle_http(body, dict(request.headers))
    return Response(content=content, status_code=status, headers=headers)
