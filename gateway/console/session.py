"""Console sessions without a server-side store: a cookie signed with the admin token.

The cookie value is ``<issued unix seconds>.<hex HMAC-SHA256(admin token, issued)>``: it
proves that whoever holds it once knew the admin token, for 12 hours, and every session
ends the moment the token changes. The CSRF token of a session is another HMAC of the
cookie value, so a page can embed it and a cross-site form cannot know it.

The admin-token middleware calls :func:`console_admits` for ``/console`` paths whose
bearer token did not match, and :func:`refuse_console` when that fails too.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from starlette.types import Scope, Send

CONSOLE_PREFIX = "/console"
COOKIE_NAME = "sb_console"
SESSION_TTL_S = 12 * 60 * 60
LOGIN_PATH = "/console/login"
STATIC_PREFIX = "/console/static/"
# Sent by the console's own fetch() calls: they want a status code, never the login page.
FETCH_HEADER = "x-console-fetch"
# A session issued by a clock slightly ahead of ours is still accepted.
_CLOCK_SKEW_S = 60
_UNAUTHORIZED = json.dumps(
    {
        "error": {
            "code": "unauthorized",
            "message": "no console session: log in at /console/login (or send the admin token)",
        }
    }
).encode()


def _mac(key: bytes, purpose: bytes, message: bytes) -> bytes:
    return hmac.new(key, purpose + b"\x00" + message, hashlib.sha256).hexdigest().encode()


def issue_session(token: bytes, *, now: float) -> str:
    """A new session cookie value for the admin token ``token``, issued at ``now``."""
    issued = str(int(now)).encode()
    return (issued + b"." + _mac(token, b"session", issued)).decode()


def session_valid(value: bytes, token: bytes, *, now: float) -> bool:
    """True when ``value`` was issued with ``token`` less than 12 hours before ``now``."""
    issued, dot, mac = value.partition(b".")
    if not dot or not issued.isdigit() or len(issued) > 12:
        return False
    age = now - int(issued)
    if age < -_CLOCK_SKEW_S or age >= SESSION_TTL_S:
        return False
    return hmac.compare_digest(mac, _mac(token, b"session", issued))


def session_expiry(value: bytes) -> int | None:
    """Unix time at which the session ``value`` ends (None when it is malformed)."""
    issued = value.partition(b".")[0]
    return int(issued) + SESSION_TTL_S if issued.isdigit() and len(issued) <= 12 else None


def csrf_token(session: bytes, key: bytes) -> str:
    """The CSRF token forms of the session ``session`` carry."""
    return _mac(key, b"csrf", session).decode()


def csrf_matches(given: str, *, session: bytes, key: bytes) -> bool:
    """Constant-time check of a form's CSRF token."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), _mac(key, b"csrf", session))


def session_cookie(scope: Scope) -> bytes | None:
    """The console session cookie of a request, if it sent one."""
    wanted = COOKIE_NAME.encode()
    for name, value in scope["headers"]:
        if name != b"cookie":
            continue
        for part in value.split(b";"):
            key, eq, cookie = part.strip().partition(b"=")
            if eq and key == wanted:
                found: bytes = cookie.strip(b'"')
                return found
    return None


def is_public(path: str) -> bool:
    """The login page and the stylesheet/script need no session."""
    return path == LOGIN_PATH or path.startswith(STATIC_PREFIX)


def console_admits(scope: Scope, token: bytes, *, now: float) -> bool:
    """True for a public console path or a request with a valid session cookie."""
    if is_public(scope["path"]):
        return True
    value = session_cookie(scope)
    return value is not None and session_valid(value, token, now=now)


def _wants_login_page(scope: Scope) -> bool:
    if scope["method"] not in ("GET", "HEAD"):
        return False
    accept = b""
    for name, value in scope["headers"]:
        if name == FETCH_HEADER.encode():
            return False
        if name == b"accept":
            accept = value
    return b"text/html" in accept


async def refuse_console(scope: Scope, send: Send) -> None:
    """A browser's page request goes to the login page; anything else gets 401."""
    if _wants_login_page(scope):
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", LOGIN_PATH.encode()),
                    (b"cache-control", b"no-store"),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})
        return
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _UNAUTHORIZED})
