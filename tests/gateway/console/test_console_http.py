"""The web console over plain HTTP: login, session cookie, CSRF, escaping, the open console."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from gateway.config_loader import load_config
from gateway.redaction import SecretRedactor
from gateway.wiring import build_app
from tests.fakes import openai_api
from tests.fakes.llm_script import FakeToolCall, Reply, Script
from tests.fakes.server import serve_app
from tests.gateway.conftest import admin_token
from tests.gateway.test_chat_api import KEY, configure

HTML = {"Accept": "text/html,application/xhtml+xml"}
FETCH = {"X-Console-Fetch": "1"}


@dataclass
class Gateway:
    api: httpx.AsyncClient  # with the bearer token
    browser: httpx.AsyncClient  # no token: cookies only
    script: Script
    token: str


@asynccontextmanager
async def gateway_for(
    workspace: Path, *, base_url: str = "http://gateway"
) -> AsyncIterator[Gateway]:
    app = build_app(load_config(workspace), redactor=SecretRedactor())
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        token = admin_token(workspace)
        bearer = {"Authorization": f"Bearer {token}"}
        async with (
            httpx.AsyncClient(transport=transport, base_url=base_url, headers=bearer) as api,
            httpx.AsyncClient(transport=transport, base_url=base_url) as browser,
        ):
            yield Gateway(api=api, browser=browser, script=Script(), token=token)


@pytest.fixture
async def llm(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Script]:
    script = Script(api_key=KEY)
    monkeypatch.setenv("SB_TEST_OPENAI_KEY", KEY)
    async with serve_app(openai_api.make_app(script)) as url:
        configure(workspace, url)
        yield script


@pytest.fixture
async def gw(llm: Script, workspace: Path) -> AsyncIterator[Gateway]:
    async with gateway_for(workspace) as gateway:
        gateway.script = llm
        yield gateway


async def log_in(gw: Gateway) -> str:
    """Log the browser client in; the CSRF token of its session."""
    answer = await gw.browser.post("/console/login", data={"token": gw.token})
    assert answer.status_code == 303, answer.text
    page = await gw.browser.get("/console", headers=HTML)
    assert page.status_code == 200
    return csrf_of(page.text)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


async def pending_shell_call(gw: Gateway, *argv: str) -> str:
    call = FakeToolCall("shell", {"argv": list(argv)}, id="call_sh")
    gw.script.push(Reply(tool_calls=(call,)), Reply(text="The tool ran."))
    answer = (await gw.api.post("/api/chat", json={"message": "run it", "user": "ops"})).json()
    assert answer["status"] == "awaiting_approval", answer
    approval_id: str = answer["pending_approvals"][0]["id"]
    return approval_id


async def test_without_a_session_a_browser_goes_to_the_login_page(gw: Gateway) -> None:
    page = await gw.browser.get("/console", headers=HTML)
    assert page.status_code == 303 and page.headers["location"] == "/console/login"
    poll = await gw.browser.get("/console/panels/approvals", headers={**HTML, **FETCH})
    assert poll.status_code == 401 and poll.json()["error"]["code"] == "unauthorized"
    assert (await gw.browser.get("/console/panels/approvals")).status_code == 401
    assert (await gw.browser.post("/console/approvals/x/approve")).status_code == 401
    login = await gw.browser.get("/console/login", headers=HTML)
    assert login.status_code == 200 and 'name="token"' in login.text
    assert login.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in login.headers["content-security-policy"]
    css = await gw.browser.get("/console/static/console.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    js = await gw.browser.get("/console/static/console.js")
    assert js.headers["content-type"].startswith("text/javascript")
    assert (await gw.browser.get("/console/static/../../secrets")).status_code == 404
    # The session cookie is for /console only: the API still wants the bearer token.
    await log_in(gw)
    assert (await gw.browser.get("/api/approvals")).status_code == 401
    # And the bearer token still opens the console, as before.
    assert (await gw.api.get("/console", headers=HTML)).status_code == 200


async def test_login_needs_the_admin_token_and_sets_a_strict_cookie(gw: Gateway) -> None:
    wrong = await gw.browser.post("/console/login", data={"token": "guess"})
    assert wrong.status_code == 401
    assert "not the admin token" in wrong.text and "set-cookie" not in wrong.headers
    assert "guess" not in wrong.text
    right = await gw.browser.post("/console/login", data={"token": gw.token})
    assert right.status_code == 303 and right.headers["location"] == "/console"
    cookie = right.headers["set-cookie"]
    assert cookie.startswith("sb_console=")
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/console", "max-age=43200"} <= attributes
    assert "secure" not in attributes  # plain http here
    assert gw.token not in cookie
    dashboard = await gw.browser.get("/console", headers=HTML)
    assert dashboard.status_code == 200
    assert "Pending approvals" in dashboard.text and 'id="logout"' in dashboard.text
    assert (await gw.browser.get("/console/login", headers=HTML)).status_code == 303
    audit = (await gw.api.get("/api/audit", params={"kind": "console.login"})).json()
    assert [r["actor"] for r in audit["records"]] == ["operator:web"]


async def test_over_https_the_cookie_is_secure(llm: Script, workspace: Path) -> None:
    async with gateway_for(workspace, base_url="https://gateway") as gw:
        right = await gw.browser.post("/console/login", data={"token": gw.token})
        assert "secure" in {p.strip().lower() for p in right.headers["set-cookie"].split(";")}


async def test_buttons_and_logout_need_the_csrf_token(gw: Gateway) -> None:
    csrf = await log_in(gw)
    approval_id = await pending_shell_call(gw, "echo", "csrf-checked")
    url = f"/console/approvals/{approval_id}/approve"
    assert (await gw.browser.post(url, headers=FETCH)).status_code == 403
    assert (await gw.browser.post(url, data={"csrf": "0" * 64}, headers=FETCH)).status_code == 403
    refused = await gw.browser.post(url, data={"csrf": csrf.upper()})
    assert refused.status_code == 403 and "CSRF token" in refused.text
    still = (await gw.api.get(f"/api/approvals/{approval_id}")).json()
    assert still["status"] == "pending"

    approved = await gw.browser.post(url, data={"csrf": csrf}, headers=FETCH)
    assert approved.status_code == 200, approved.text
    assert f"Approved shell ({approval_id}); the action succeeded." in approved.text
    decided = (await gw.api.get(f"/api/approvals/{approval_id}")).json()
    assert (decided["status"], decided["decided_by"]) == ("approved", "operator:web")
    again = await gw.browser.post(
        f"/console/approvals/{approval_id}/reject", data={"csrf": csrf}, headers=FETCH
    )
    assert again.status_code == 409
    assert "already decided: approved by operator:web" in again.text
    unknown = await gw.browser.post("/console/approvals/nope/approve", data={"csrf": csrf})
    assert unknown.status_code == 404 and "There is no approval nope." in unknown.text

    assert (await gw.browser.post("/console/logout", data={"csrf": "x"})).status_code == 403
    out = await gw.browser.post("/console/logout", data={"csrf": csrf})
    assert out.status_code == 303 and out.headers["location"] == "/console/login"
    assert (
        'sb_console=""' in out.headers["set-cookie"]
        or "max-age=0" in out.headers["set-cookie"].lower()
    )
    assert (await gw.browser.get("/console", headers=HTML)).status_code == 303


async def test_tool_arguments_from_the_model_are_escaped(gw: Gateway) -> None:
    await log_in(gw)
    await pending_shell_call(gw, "echo", "<img src=x onerror=alert(1)>")
    panel = await gw.browser.get("/console/panels/approvals", headers=FETCH)
    assert panel.status_code == 200
    assert "&lt;img src=x onerror=alert(1)&gt;" in panel.text
    assert "<img" not in panel.text


async def test_the_panels_show_providers_and_the_verified_audit_chain(gw: Gateway) -> None:
    await log_in(gw)
    providers = await gw.browser.get("/console/panels/providers", headers=FETCH)
    assert 'data-provider="gpt"' in providers.text and "healthy" in providers.text
    channels = await gw.browser.get("/console/panels/channels", headers=FETCH)
    assert "No chat platform runs in this gateway" in channels.text
    audit = await gw.browser.get("/console/panels/audit", headers=FETCH)
    assert "Chain verified: ok" in audit.text and "console.login" in audit.text
    missing = await gw.browser.get("/console/panels/nothing", headers=FETCH)
    assert missing.status_code == 404


async def test_without_an_admin_token_the_console_is_open_and_says_so(
    llm: Script, workspace: Path
) -> None:
    text = workspace.read_text()
    workspace.write_text(re.sub(r"(?m)^admin_token = .*$", "", text))
    async with gateway_for(workspace) as gw:
        gw.script = llm
        page = await gw.browser.get("/console", headers=HTML)
        assert page.status_code == 200 and "No admin token is configured" in page.text
        assert (await gw.browser.get("/console/login")).headers["location"] == "/console"
        approval_id = await pending_shell_call(gw, "echo", "open")
        panel = await gw.browser.get("/console/panels/approvals", headers=FETCH)
        url = f"/console/approvals/{approval_id}/reject"
        assert (await gw.browser.post(url)).status_code == 403  # still no cross-site forms
        done = await gw.browser.post(url, data={"csrf": csrf_of(panel.text)})
        assert done.status_code == 200 and f"Rejected shell ({approval_id})" in done.text
