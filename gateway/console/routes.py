"""``/console``: the dashboard, its panel fragments, login/logout and the approval buttons.

Authentication happens before these routes (``gateway.api.auth``: bearer token or session
cookie). Every state-changing POST here also needs the CSRF token of the session, which
only a page served by the console can know. With no admin token configured the console is
open, and its forms carry a token keyed with a per-process secret instead.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from core.errors import ApprovalConflict, NotFound, SwitchboardError
from gateway.api.deps import RuntimeDep
from gateway.console import session
from gateway.console.panels import PANELS, AuditCheck
from gateway.console.rendering import install_filters
from gateway.decisions import decide_and_settle
from gateway.runtime import Runtime

log = logging.getLogger("switchboard.console")

router = APIRouter(prefix="/console", include_in_schema=False)
WEB_OPERATOR = "operator:web"
MAX_FORM_BYTES = 8 * 1024
PANEL_TITLES = (
    ("approvals", "Pending approvals"),
    ("providers", "Providers"),
    ("channels", "Channels"),
    ("actions", "Recent actions"),
    ("audit", "Audit trail"),
)
_STATIC_TYPES = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
# No inline script or style anywhere, no framing (the buttons must not be clickjacked).
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_OPEN_SESSION = b"open"


class ConsoleState:
    """What the console keeps per app: templates, static files, the audit check, keys."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.templates = Environment(
            loader=PackageLoader("gateway.console", "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        install_filters(self.templates)
        self.audit_check = AuditCheck()
        # Keys the CSRF token of an open console (no admin token): new on every start.
        self.open_key = secrets.token_bytes(32)
        static = files("gateway.console").joinpath("static")
        self.static = {
            name: (static.joinpath(name).read_bytes(), media_type)
            for name, media_type in _STATIC_TYPES.items()
        }

    def render(self, template: str, context: dict[str, Any]) -> str:
        """One template, autoescaped."""
        return self.templates.get_template(template).render(context)


def install_console(app: FastAPI) -> None:
    """Serve the console at ``/console`` (behind the admin-token middleware)."""
    app.state.console = ConsoleState()
    app.include_router(router)


@dataclass(frozen=True, slots=True)
class Visitor:
    """Who looks at the page: open console, a session (with its CSRF token), or a bearer."""

    open: bool
    csrf: str
    session_ends: datetime | None


@dataclass(frozen=True, slots=True)
class Notice:
    """The outcome of a button press, shown above the panels."""

    ok: bool
    text: str


@dataclass(frozen=True, slots=True)
class ConsoleRequest:
    """One request to the console, with the runtime and the console's state."""

    request: Request
    runtime: Runtime
    state: ConsoleState

    @property
    def admin_token(self) -> bytes | None:
        """The admin token in force (None: the console is open)."""
        ref = self.runtime.config.config.gateway.admin_token
        return ref.reveal().encode() if ref is not None else None

    @property
    def is_fetch(self) -> bool:
        """Sent by the console's script: answer a fragment, not a page."""
        return session.FETCH_HEADER in self.request.headers

    def session(self, token: bytes) -> bytes | None:
        """The request's session cookie if it is valid for ``token``."""
        value = session.session_cookie(self.request.scope)
        if value is None or not session.session_valid(value, token, now=self.state.clock()):
            return None
        return value

    def visitor(self) -> Visitor:
        """Open console, logged-in session, or let in by the bearer token (no buttons)."""
        token = self.admin_token
        if token is None:
            csrf = session.csrf_token(_OPEN_SESSION, self.state.open_key)
            return Visitor(open=True, csrf=csrf, session_ends=None)
        value = self.session(token)
        if value is None:
            return Visitor(open=False, csrf="", session_ends=None)
        ends = session.session_expiry(value)
        return Visitor(
            open=False,
            csrf=session.csrf_token(value, token),
            session_ends=datetime.fromtimestamp(ends, UTC) if ends is not None else None,
        )

    def csrf_ok(self, form: dict[str, str]) -> bool:
        """The form carries the CSRF token of this request's session (constant time)."""
        given = form.get("csrf", "")
        token = self.admin_token
        if token is None:
            return session.csrf_matches(given, session=_OPEN_SESSION, key=self.state.open_key)
        value = self.session(token)
        return value is not None and session.csrf_matches(given, session=value, key=token)

    async def form(self) -> dict[str, str]:
        """An ``application/x-www-form-urlencoded`` body of at most 8 KiB ({} otherwise)."""
        body = bytearray()
        async for chunk in self.request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                raise HTTPException(413, f"a console form is at most {MAX_FORM_BYTES} bytes")
        content_type = self.request.headers.get("content-type", "")
        if content_type.partition(";")[0].strip().lower() != "application/x-www-form-urlencoded":
            return {}
        try:
            return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=16))
        except (UnicodeDecodeError, ValueError):
            return {}

    def page(self, template: str, context: dict[str, Any], *, status: int = 200) -> HTMLResponse:
        """A rendered template with the console's security headers."""
        html = self.state.render(template, context)
        return HTMLResponse(html, status_code=status, headers=_PAGE_HEADERS)

    async def panel_html(self, name: str, visitor: Visitor) -> str:
        """One panel's HTML; raises ``SwitchboardError`` when its data cannot be read."""
        context = await PANELS[name](self.runtime, self.state.audit_check)
        return self.state.render(f"panel_{name}.html", {**context, "visitor": visitor})

    async def dashboard(self, *, notice: Notice | None = None, status: int = 200) -> HTMLResponse:
        """The whole console, each panel rendered (a failing one says why, in its place)."""
        visitor = self.visitor()
        panels: dict[str, Markup] = {}
        for name, _ in PANEL_TITLES:
            try:
                html = await self.panel_html(name, visitor)
            except SwitchboardError as exc:
                html = self.state.render("panel_error.html", {"message": exc.message})
            panels[name] = Markup(html)  # noqa: S704 - output of an autoescaped template
        context = {
            "visitor": visitor,
            "panels": panels,
            "panel_titles": PANEL_TITLES,
            "notice": notice,
            "now": datetime.fromtimestamp(self.state.clock(), UTC),
        }
        return self.page("dashboard.html", context, status=status)

    def forbidden(self) -> HTMLResponse:
        """403 for a form without the right CSRF token."""
        if self.is_fetch:
            return self.page(
                "notice.html", {"notice": Notice(ok=False, text=_CSRF_REFUSED)}, status=403
            )
        return self.page("message.html", {"title": "Refused", "message": _CSRF_REFUSED}, status=403)


_CSRF_REFUSED = (
    "Refused: this form's CSRF token is missing or out of date. Reload the console and try again."
)


async def _console_request(request: Request, runtime: RuntimeDep) -> ConsoleRequest:
    state: ConsoleState = request.app.state.console
    return ConsoleRequest(request=request, runtime=runtime, state=state)


Console = Annotated[ConsoleRequest, Depends(_console_request)]


@router.get("")
async def dashboard(console: Console) -> HTMLResponse:
    """The whole console; the script then refreshes each panel every 2 s."""
    return await console.dashboard()


@router.get("/panels/{name}")
async def panel(name: str, console: Console) -> HTMLResponse:
    """One panel's HTML fragment (what the script polls)."""
    if name not in PANELS:
        return console.page("panel_error.html", {"message": f"no panel {name!r}"}, status=404)
    try:
        html = await console.panel_html(name, console.visitor())
    except SwitchboardError as exc:
        return console.page("panel_error.html", {"message": exc.message}, status=503)
    return HTMLResponse(html, headers=_PAGE_HEADERS)


@router.get("/login")
async def login_page(console: Console) -> Response:
    """The login form (straight to the console when already logged in, or open)."""
    token = console.admin_token
    if token is None or console.session(token) is not None:
        return RedirectResponse("/console", status_code=303)
    return console.page("login.html", {"error": None})


@router.post("/login")
async def login(console: Console) -> Response:
    """Check the pasted admin token; on success set the session cookie (12 h)."""
    token = console.admin_token
    if token is None:
        return RedirectResponse("/console", status_code=303)
    given = (await console.form()).get("token", "").strip().encode()
    request = console.request
    client = request.client.host if request.client else "-"
    if not hmac.compare_digest(given, token):
        log.warning("event=console_login_refused client=%s", client)
        context = {"error": "That is not the admin token of this gateway."}
        return console.page("login.html", context, status=401)
    value = session.issue_session(token, now=console.state.clock())
    await console.runtime.audit.append("console.login", actor=WEB_OPERATOR, data={"client": client})
    log.info("event=console_login client=%s", client)
    response = RedirectResponse("/console", status_code=303)
    response.set_cookie(
        session.COOKIE_NAME,
        value,
        max_age=session.SESSION_TTL_S,
        path=session.CONSOLE_PREFIX,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


@router.post("/logout")
async def logout(console: Console) -> Response:
    """Forget the session cookie in this browser (needs the CSRF token)."""
    if console.admin_token is None:
        return RedirectResponse("/console", status_code=303)
    if not console.csrf_ok(await console.form()):
        return console.forbidden()
    response = RedirectResponse(session.LOGIN_PATH, status_code=303)
    response.delete_cookie(
        session.COOKIE_NAME,
        path=session.CONSOLE_PREFIX,
        secure=console.request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


@router.post("/approvals/{approval_id}/approve")
async def approve(approval_id: str, console: Console) -> HTMLResponse:
    """The Approve button: exactly what ``POST /api/approvals/{id}/approve`` does."""
    return await _decide(console, approval_id, approve=True)


@router.post("/approvals/{approval_id}/reject")
async def reject(approval_id: str, console: Console) -> HTMLResponse:
    """The Reject button: exactly what ``POST /api/approvals/{id}/reject`` does."""
    return await _decide(console, approval_id, approve=False)


async def _decide(console: ConsoleRequest, approval_id: str, *, approve: bool) -> HTMLResponse:
    if not console.csrf_ok(await console.form()):
        return console.forbidden()
    notice, status = await _decision_notice(console.runtime, approval_id, approve=approve)
    if console.is_fetch:
        return console.page("notice.html", {"notice": notice}, status=status)
    return await console.dashboard(notice=notice, status=status)


async def _decision_notice(
    runtime: Runtime, approval_id: str, *, approve: bool
) -> tuple[Notice, int]:
    try:
        approval = await decide_and_settle(
            runtime, approval_id, approve=approve, decider=WEB_OPERATOR
        )
    except ApprovalConflict as exc:
        return Notice(ok=False, text=exc.message[:1].upper() + exc.message[1:] + "."), 409
    except NotFound:
        return Notice(ok=False, text=f"There is no approval {approval_id}."), 404
    except SwitchboardError as exc:
        text = f"The decision on {approval_id} did not complete: {exc.message}"
        return Notice(ok=False, text=text), exc.http_status
    stored = await runtime.approvals.get_action(approval.action_id)
    tool = stored.action.payload.get("tool") or "the action"
    if approve:
        text = f"Approved {tool} ({approval.id}); the action {stored.action.status.value}."
    else:
        text = f"Rejected {tool} ({approval.id}); nothing ran."
    return Notice(ok=True, text=text), 200


@router.get("/static/{name}")
async def static(name: str, request: Request) -> Response:
    """The console's stylesheet and script (no session needed)."""
    state: ConsoleState = request.app.state.console
    entry = state.static.get(name)
    if entry is None:
        return Response("not found", status_code=404, media_type="text/plain")
    body, media_type = entry
    headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    return Response(body, media_type=media_type, headers=headers)
