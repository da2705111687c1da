"""Browser tests of the web UI: Debian's headless Chromium (/usr/bin/chromium) driven by
Playwright, against a real chatgate (uvicorn in a thread) in front of the fake upstream.

No browser is ever downloaded. Without /usr/bin/chromium (``make test`` installs it as root), or
without a built UI (``make ui``), the tests skip with the reason — and fail under CI=true.
Each test gets a fresh browser context (empty IndexedDB and localStorage). The UI runs in its
local mode (conversations in the browser) unless a test opts into the server's /api.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chatgate.api.ui import STATIC_DIR
from chatgate.app import create_app
from tests.conftest import gateway_config
from tests.fakes.upstream import FakeUpstream
from tests.server import ServerThread

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
MODEL = "fake-model"
FORCE_LOCAL = "localStorage.setItem('chatgate.backend', 'local');"
# Collected in every page: CSP violations and uncaught errors fail the test that caused them.
WATCH = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__csp.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the browser tests must run)")
    pytest.skip(reason)


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    # Package scope, not session: Playwright's sync API keeps an event loop marked as running
    # in the main thread while it lives, which breaks every asyncio test collected after
    # tests/e2e. Stopping it when the package is done leaves the rest of the suite clean.
    if not CHROMIUM.exists():
        _unavailable("no /usr/bin/chromium: `apt-get install chromium` (make test does it as root)")
    if not (STATIC_DIR / "index.html").exists():
        _unavailable("the web UI is not built: run `make ui`")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[dev]')")
    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()
    finally:
        pw.stop()


@pytest.fixture(scope="session")
def ui_url(fake_server: FakeUpstream) -> Iterator[str]:
    with ServerThread(create_app(gateway_config(fake_server.base_url))) as url:
        yield url


class UiPage:
    """A page of the app with what the tests watch: dialogs, errors, CSP violations."""

    def __init__(self, page: Any, url: str) -> None:
        self.page = page
        self.url = url
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def open(self, path: str = "/", model: str | None = MODEL) -> Any:
        page = self.page
        page.goto(self.url + path)
        page.wait_for_selector(".app[data-ready='true']")
        if model is not None:
            page.wait_for_function(
                "m => [...document.querySelectorAll('.model-picker option')]"
                ".some(o => o.value === m)",
                arg=model,
            )
            page.locator(".model-picker select").select_option(model)
        return page

    def reload(self) -> Any:
        """Reload once every write has landed (the page updates before its storage does)."""
        page = self.page
        page.locator(".app[data-saved='true']").wait_for()
        page.reload()
        page.wait_for_selector(".app[data-ready='true']")
        return page

    def send(self, text: str) -> None:
        box = self.page.locator(".composer textarea")
        box.fill(text)
        box.press("Enter")

    def last_answer(self) -> Any:
        return self.page.locator("article.msg-assistant").last

    def wait_answer(self, status: str = "done", timeout: float = 15_000) -> Any:
        answer = self.last_answer()
        answer.and_(self.page.locator(f"[data-status='{status}']")).wait_for(timeout=timeout)
        return answer

    def csp_violations(self) -> list[str]:
        return list(self.page.evaluate("window.__csp || []"))


@pytest.fixture
def new_page(browser: Any, ui_url: str) -> Iterator[Callable[..., UiPage]]:
    contexts: list[Any] = []
    pages: list[UiPage] = []

    def make(
        locale: str = "en-US",
        local: bool = True,
        viewport: dict[str, int] | None = None,
        color_scheme: str = "light",
    ) -> UiPage:
        ctx = browser.new_context(
            locale=locale,
            viewport=viewport or {"width": 1280, "height": 800},
            color_scheme=color_scheme,
        )
        ctx.add_init_script(WATCH + (FORCE_LOCAL if local else ""))
        contexts.append(ctx)
        ui = UiPage(ctx.new_page(), ui_url)
        pages.append(ui)
        return ui

    yield make
    try:
        for ui in pages:
            assert not ui.errors, f"uncaught errors in the page: {ui.errors}"
            if not ui.page.is_closed():
                assert not ui.csp_violations(), f"CSP violations: {ui.csp_violations()}"
    finally:
        for ctx in contexts:
            ctx.close()


@pytest.fixture
def ui(new_page: Callable[..., UiPage]) -> UiPage:
    return new_page()


@pytest.fixture
def server_ui(new_page: Callable[..., UiPage], ui_url: str) -> UiPage:
    """A page in server mode (history on the server, as `chatgate serve` users get it); the
    server's /api answers as the implicit single user (loopback, no users yet)."""
    me = httpx.get(ui_url + "/api/me", timeout=10)
    assert me.status_code == 200, me.text
    return new_page(local=False)
