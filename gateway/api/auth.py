"""Bearer admin-token authentication for everything under ``/api``, ``/v1`` and ``/console``.

The web console also accepts its session cookie (``gateway.console.session``), and only there.

A plain ASGI middleware rather than a route dependency, so that unknown paths under the
protected prefixes answer 401 too (no probing of which routes exist) and the check costs
one comparison per request.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.console.session import CONSOLE_PREFIX, console_admits, refuse_console

PROTECTED_PREFIXES = ("/api/", "/v1/", "/console")
_UNAUTHORIZED = json.dumps(
    {
        "error": {
            "code": "unauthorized",
            "message": "missing or wrong admin token: send 'Authorization: Bearer <admin_token>'",
            # OpenAI's fields too, so the OpenAI SDKs on /v1 read it like their API's own.
            "type": "authentication_error",
            "param": None,
        }
    }
).encode()


def is_protected(path: str) -> bool:
    """True for the paths that need the admin token."""
    return path.startswith(PROTECTED_PREFIXES) or path in ("/api", "/v1", "/metrics")


class AdminTokenMiddleware:
    """Rejects protected requests without the right ``Authorization: Bearer`` token.

    ``token_source`` returns the token in force (it can change on a config reload) or None
    when no token is configured, which the config only allows on a loopback address.
    """

    def __init__(self, app: ASGIApp, *, token_source: Callable[[], bytes | None]) -> None:
        self._app = app
        self._token_source = token_source

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_protected(scope["path"]):
            await self._app(scope, receive, send)
            return
        expected = self._token_source()
        if expected is not None and not _bearer_matches(scope, expected):
            if scope["path"].startswith(CONSOLE_PREFIX):  # a browser: its session cookie
                if console_admits(scope, expected, now=time.time()):
                    await self._app(scope, receive, send)
                else:
                    await refuse_console(scope, send)
                return
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"www-authenticate", b'Bearer realm="switchboard"'),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": _UNAUTHORIZED})
            return
        await self._app(scope, receive, send)


def _bearer_matches(scope: Scope, expected: bytes) -> bool:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), expected)
    return False
