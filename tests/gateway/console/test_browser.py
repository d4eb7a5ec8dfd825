"""The web console in a real browser: headless Chromium, driven by Selenium, on a live gateway.

One gateway (uvicorn on a loopback port, with the OpenAI and Telegram fakes) and one browser
serve the whole module; every test logs in itself and works on approvals of its own.
Chromium and its driver come from Debian (``apt-get install chromium chromium-driver``,
which ``scripts/check`` does when they are missing); Selenium never downloads anything.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

from gateway.cli import main
from gateway.config_loader import load_config
from gateway.redaction import SecretRedactor
from gateway.wiring import build_app
from tests.fakes import openai_api
from tests.fakes.llm_script import FakeToolCall, Reply, Script
from tests.fakes.server import serve_app
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.telegram_api import make_app as telegram_app
from tests.gateway.conftest import admin_token

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)
LLM_KEY = "sk-test-0123456789abcdef"
TELEGRAM_TOKEN = "123456:TEST-token"
WAIT_S = 15.0


def write_config(workspace: Path, *, llm_url: str, telegram_url: str) -> None:
    """The OpenAI fake as the default provider, shell (echo only) on, Telegram on its fake."""
    data = workspace.parent / "data"
    for name, secret in (("llm.key", LLM_KEY), ("telegram.token", TELEGRAM_TOKEN)):
        path = data / name
        path.write_text(secret + "\n")
        path.chmod(0o600)
    text = workspace.read_text().replace("default = true\n", "")
    text += f"""
[providers.gpt]
type = "openai"
base_url = "{llm_url}/v1"
api_key = "file:./data/llm.key"
default_model = "fake-small"
default = true
max_retries = 0

[tools.shell]
enabled = true
allow = ["echo"]
timeout_s = 5

[channels.telegram]
token = "file:./data/telegram.token"
api_base = "{telegram_url}"
mode = "polling"
"""
    workspace.write_text(text)


class LiveGateway:
    """The gateway and its fakes on loopback ports, served by a background thread's loop."""

    def __init__(self, workspace: Path) -> None:
        self.workspace = workspace
        self.script = Script(api_key=LLM_KEY)
        self.telegram = FakeTelegram(TELEGRAM_TOKEN)
        self.url = ""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="live-gateway", daemon=True)

    def __enter__(self) -> LiveGateway:
        self._thread.start()
        if not self._ready.wait(90):
            raise AssertionError("the gateway did not start within 90 s")
        if self._error is not None:
            raise AssertionError(f"the gateway did not start: {self._error!r}")
        return self

    def __exit__(self, *_: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)
        assert not self._thread.is_alive(), "the gateway did not stop within 60 s"
        if self._error is not None:
            raise AssertionError(f"the gateway failed: {self._error!r}")

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the test thread
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with (
            serve_app(openai_api.make_app(self.script)) as llm_url,
            serve_app(telegram_app(self.telegram)) as telegram_url,
        ):
            write_config(self.workspace, llm_url=llm_url, telegram_url=telegram_url)
            app = build_app(load_config(self.workspace), redactor=SecretRedactor())
            async with (
                LifespanManager(app, startup_timeout=60, shutdown_timeout=30) as manager,
                serve_app(manager.app) as url,
            ):
                self.url = url
                self._ready.set()
                await self._stop.wait()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveGateway]:
    folder = tmp_path_factory.mktemp("console")
    assert main(["init", "--dir", str(folder)]) == 0
    config = folder / "switchboard.toml"
    assert main(["migrate", "--config", str(config)]) == 0
    with LiveGateway(config) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def api(live: LiveGateway) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {admin_token(live.workspace)}"}
    with httpx.Client(base_url=live.url, headers=headers, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail(
            f"{CHROMIUM} and {CHROMEDRIVER} are needed: run scripts/check (as root) or "
            "`apt-get install -y --no-install-recommends chromium chromium-driver`",
            pytrace=False,
        )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    with tempfile.TemporaryDirectory(prefix="sb-chromium-") as profile:
        for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        with pytest.MonkeyPatch.context() as env:
            env.setenv("SE_OFFLINE", "true")  # Selenium Manager must never download a driver
            driver = webdriver.Chrome(
                options=options, service=Service(executable_path=str(CHROMEDRIVER))
            )
        try:
            driver.set_page_load_timeout(30)
            yield driver
        finally:
            driver.quit()


def eventually(driver: WebDriver, check: Callable[[WebDriver], Any], what: str) -> Any:
    """Wait until ``check`` returns something truthy (panels refresh every 2 s)."""

    def attempt(d: WebDriver) -> Any:
        try:
            return check(d)
        except (NoSuchElementException, StaleElementReferenceException):
            return False

    return WebDriverWait(driver, WAIT_S, poll_frequency=0.1).until(attempt, f"never: {what}")


def text_of(driver: WebDriver, css: str) -> str:
    text: str = driver.find_element(By.CSS_SELECTOR, css).text
    return text


def log_in(driver: WebDriver, live: LiveGateway) -> None:
    driver.delete_all_cookies()
    driver.get(f"{live.url}/console")
    assert driver.current_url == f"{live.url}/console/login"
    driver.find_element(By.ID, "token").send_keys(admin_token(live.workspace))
    driver.find_element(By.ID, "login-submit").click()
    eventually(driver, lambda d: d.find_element(By.ID, "panel-approvals"), "the dashboard")


def pending_shell_call(api: httpx.Client, live: LiveGateway, word: str) -> str:
    """A chat whose model calls ``shell echo <word>``: critical, so it waits for approval."""
    call = FakeToolCall("shell", {"argv": ["echo", word]}, id=f"call_{word[:20]}")
    live.script.push(Reply(tool_calls=(call,)), Reply(text=f"The tool said {word}."))
    answer = api.post("/api/chat", json={"message": f"please echo {word}", "user": word})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "awaiting_approval", body
    approval_id: str = body["pending_approvals"][0]["id"]
    return approval_id


def tool_action(api: httpx.Client, approval_id: str) -> dict[str, Any]:
    action_id = api.get(f"/api/approvals/{approval_id}").json()["action_id"]
    actions = api.get("/api/actions", params={"limit": 1000}).json()
    found: dict[str, Any] = next(a for a in actions if a["id"] == action_id)
    return found


def test_login_refuses_a_wrong_token_and_opens_the_dashboard_with_the_right_one(
    browser: WebDriver, live: LiveGateway
) -> None:
    browser.delete_all_cookies()
    browser.get(f"{live.url}/console")
    assert browser.current_url == f"{live.url}/console/login"
    browser.find_element(By.ID, "token").send_keys("not-the-token")
    browser.find_element(By.ID, "login-submit").click()
    error = eventually(browser, lambda d: d.find_element(By.ID, "login-error"), "login error")
    assert "not the admin token" in error.text
    assert browser.current_url == f"{live.url}/console/login"

    log_in(browser, live)
    assert browser.current_url == f"{live.url}/console"
    gpt = text_of(browser, '[data-provider="gpt"]')
    assert "default" in gpt and "openai" in gpt and "healthy" in gpt and "fake-small" in gpt
    assert "echo" in text_of(browser, '[data-provider="echo"]')
    telegram = eventually(
        browser,
        lambda d: d.find_element(By.CSS_SELECTOR, '[data-channel="telegram"] .state.ok'),
        "Telegram shown connected",
    )
    assert telegram.text
    assert "switchboard_bot" in text_of(browser, '[data-channel="telegram"]')
    eventually(
        browser,
        lambda d: text_of(d, "#refresh-status").startswith("Last refresh"),
        "a refresh",
    )


def test_a_new_approval_shows_up_by_itself_and_approve_runs_it(
    browser: WebDriver, live: LiveGateway, api: httpx.Client
) -> None:
    log_in(browser, live)
    browser.execute_script("window.sameDocument = 'yes';")
    approval_id = pending_shell_call(api, live, "approved-in-the-browser")
    row = f"#approval-{approval_id}"
    eventually(browser, lambda d: d.find_element(By.CSS_SELECTOR, row), "the approval appears")
    assert browser.execute_script("return window.sameDocument;") == "yes", "the page reloaded"
    assert '"approved-in-the-browser"' in text_of(browser, f"{row} .arguments")

    browser.find_element(By.CSS_SELECTOR, f"{row} button.approve").click()
    notice = eventually(
        browser,
        lambda d: "Approved" in text_of(d, "#notice") and text_of(d, "#notice"),
        "the decision's notice",
    )
    assert notice == f"Approved shell ({approval_id}); the action succeeded."
    decided = api.get(f"/api/approvals/{approval_id}").json()
    assert (decided["status"], decided["decided_by"]) == ("approved", "operator:web")
    action = tool_action(api, approval_id)
    assert action["status"] == "succeeded" and "approved-in-the-browser" in action["result"]
    eventually(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, row), "the row goes")
    eventually(
        browser,
        lambda d: "approved-in-the-browser" in text_of(d, "#panel-actions"),
        "the action's result in the actions panel",
    )
    eventually(
        browser,
        lambda d: text_of(d, "#audit-verdict").startswith("Chain verified: ok"),
        "the audit chain verified",
    )
    assert "approval.click" in text_of(browser, "#panel-audit")
    assert browser.execute_script("return window.sameDocument;") == "yes"


def test_reject_in_the_browser_runs_nothing(
    browser: WebDriver, live: LiveGateway, api: httpx.Client
) -> None:
    log_in(browser, live)
    approval_id = pending_shell_call(api, live, "rejected-in-the-browser")
    row = f"#approval-{approval_id}"
    eventually(browser, lambda d: d.find_element(By.CSS_SELECTOR, row), "the approval appears")
    browser.find_element(By.CSS_SELECTOR, f"{row} button.reject").click()
    eventually(
        browser,
        lambda d: text_of(d, "#notice") == f"Rejected shell ({approval_id}); nothing ran.",
        "the decision's notice",
    )
    decided = api.get(f"/api/approvals/{approval_id}").json()
    assert (decided["status"], decided["decided_by"]) == ("rejected", "operator:web")
    action = tool_action(api, approval_id)
    assert action["status"] == "rejected" and not action["result"]
    decisions = eventually(
        browser,
        lambda d: d.find_element(By.CSS_SELECTOR, f'tr.decided[data-approval="{approval_id}"]'),
        "the decision in the latest decisions",
    )
    assert "rejected" in decisions.text and "operator:web" in decisions.text


def test_a_post_without_the_csrf_token_is_refused(
    browser: WebDriver, live: LiveGateway, api: httpx.Client
) -> None:
    log_in(browser, live)
    cookie = browser.get_cookie("sb_console")
    assert cookie is not None
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/console" and cookie["secure"] is False  # plain http here
    assert browser.execute_script("return document.cookie;") == ""  # out of the scripts' reach
    approval_id = pending_shell_call(api, live, "forged")
    url = f"{live.url}/console/approvals/{approval_id}/approve"
    with httpx.Client(cookies={"sb_console": cookie["value"]}, timeout=30) as plain:
        refused = plain.post(url, data={"note": "no csrf field"})
        assert refused.status_code == 403 and "CSRF token" in refused.text
        assert plain.post(url, data={"csrf": "1" * 64}).status_code == 403
    assert api.get(f"/api/approvals/{approval_id}").json()["status"] == "pending"
    assert api.post(f"/api/approvals/{approval_id}/reject").status_code == 200


def test_without_a_session_the_console_sends_the_browser_to_the_login_page(
    browser: WebDriver, live: LiveGateway
) -> None:
    log_in(browser, live)
    browser.find_element(By.ID, "logout").click()
    eventually(browser, lambda d: d.current_url == f"{live.url}/console/login", "the login page")
    assert browser.get_cookie("sb_console") is None
    browser.get(f"{live.url}/console")
    assert browser.current_url == f"{live.url}/console/login"
    assert browser.find_element(By.ID, "token").get_attribute("type") == "password"


def test_the_page_says_when_refreshing_fails_and_keeps_the_last_data(
    browser: WebDriver, workspace: Path
) -> None:
    with LiveGateway(workspace) as doomed:
        log_in(browser, doomed)
        eventually(
            browser,
            lambda d: text_of(d, "#refresh-status").startswith("Last refresh"),
            "a refresh",
        )

    # The gateway is gone: every panel's refresh fails, and the page says so.
    def failure_of_providers(d: WebDriver) -> str | bool:
        status = text_of(d, "#refresh-status")
        return "Refresh failed at" in status and "providers:" in status and status

    status = eventually(browser, failure_of_providers, "the failure reported")
    assert "showing data from" in status
    assert "healthy" in text_of(browser, '[data-provider="gpt"]')


def test_the_api_docs_render_without_internet_access(browser: WebDriver, live: LiveGateway) -> None:
    # The browser reaches nothing but loopback: Swagger UI must come from the gateway.
    browser.get(f"{live.url}/docs")
    eventually(
        browser,
        lambda d: len(d.find_elements(By.CSS_SELECTOR, ".opblock")) > 20,
        "the operations rendered by Swagger UI",
    )
    assert "/v1/chat/completions" in browser.find_element(By.TAG_NAME, "body").text
    browser.get(f"{live.url}/redoc")
    eventually(browser, lambda d: "/api/approvals" in text_of(d, "body"), "ReDoc's page")
