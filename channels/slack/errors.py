"""Slack's Web API errors, read: what the outbox should do with a failed call.

slack-sdk raises ``SlackApiError`` for an ``ok: false`` answer and for an HTTP error; its
``response`` has the status, the headers (``Retry-After`` on a 429) and the body, which is
JSON from Slack but may be a plain text page from a proxy in between.
"""

from __future__ import annotations

import aiohttp
from slack_sdk.errors import SlackApiError

from core.errors import DeliveryError, DeliveryRefused, DeliveryRetry

# ok:false errors that say "try again" rather than "never": everything else is a refusal.
_TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


def slack_error(exc: SlackApiError) -> str:
    """Slack's error code (``invalid_auth``, ``ratelimited`` ...), or the HTTP status."""
    data = exc.response.data
    error = data.get("error") if isinstance(data, dict) else None
    return str(error) if error else f"HTTP {exc.response.status_code}"


def delivery_error(exc: SlackApiError | aiohttp.ClientError | TimeoutError) -> DeliveryError:
    """What a failed Web API call means for the outbox: retry later, or give up."""
    if not isinstance(exc, SlackApiError):
        return DeliveryRetry(f"cannot reach Slack: {type(exc).__name__}: {exc}")
    status = exc.response.status_code
    error = slack_error(exc)
    if status == 429 or error == "ratelimited":
        raw = exc.response.headers.get("Retry-After", "1")
        try:
            retry_after = max(0.0, float(raw))
        except (TypeError, ValueError):
            retry_after = 1.0
        return DeliveryRetry(f"Slack rate limit: {error}", retry_after=retry_after)
    if status >= 500 or error in _TRANSIENT_ERRORS:
        return DeliveryRetry(f"Slack is failing: {error}")
    return DeliveryRefused(f"Slack refused it: {error}")
