"""The sign-in page when accounts are on (a second chatgate with users, so no single-user mode):
a wrong password is refused in the page, the right one opens the chat, Sign out returns to the
form; only an admin sees the admin link, and /admin/ answers a non-admin's session with 403."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from chatgate.app import create_app
from chatgate.chat.accounts import Accounts
from chatgate.storage import Database
from tests.conftest import gateway_config
from tests.e2e.conftest import UiPage
from tests.fakes.upstream import FakeUpstream
from tests.server import ServerThread

PASSWORD = "correct horse battery"


async def _make_users(db_url: str) -> None:
    async with Database(db_url) as db:
        accounts = Accounts(db, "off", True)
        await accounts.create_user("root", PASSWORD, is_admin=True)
        await accounts.create_user("alice", PASSWORD)


@pytest.fixture(scope="module")
def ui_url(fake_server: FakeUpstream) -> Iterator[str]:
    """This module's chatgate (it overrides the shared one for `new_page`): loopback and the
    default `single_user: auto`, but with users who have passwords — so accounts are on."""
    db_url = f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='chatgate-')}/db"
    config = gateway_config(fake_server.base_url, database={"url": db_url})
    with ServerThread(create_app(config)) as url:
        # After start-up (the migrations have run), and in a thread of its own: Playwright's
        # sync API keeps an event loop running in this one.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, _make_users(db_url)).result()
        assert httpx.get(url + "/api/me").status_code == 401
        yield url


@pytest.fixture
def ui(new_page: Callable[..., UiPage]) -> UiPage:
    return new_page(local=False)


def login_form(ui: UiPage) -> Any:
    page = ui.page
    page.goto(ui.url + "/")
    form = page.get_by_role("form", name="Sign in")
    form.wait_for()
    return form


def sign_in(ui: UiPage, name: str, password: str = PASSWORD) -> Any:
    form = login_form(ui)
    form.get_by_label("User name").fill(name)
    form.get_by_label("Password").fill(password)
    form.get_by_role("button", name="Sign in").click()
    return form


def test_wrong_password_right_password_sign_out(ui: UiPage, fake: FakeUpstream) -> None:
    page = ui.page
    form = sign_in(ui, "alice", "not the password")
    expect(form.get_by_role("alert")).to_have_text("Wrong user name or password.")
    assert page.locator(".app").count() == 0

    form.get_by_label("Password").fill(PASSWORD)
    form.get_by_role("button", name="Sign in").click()
    page.wait_for_selector(".app[data-ready='true']")
    expect(page.locator(".composer textarea")).to_be_visible()
    prefs = page.locator(".prefs")
    expect(prefs).to_contain_text("Signed in as alice")
    expect(prefs).to_contain_text("Chats are kept on the server")
    # The chat works for the signed-in user.
    ui.open(model="fake-model")
    ui.send("Hello as alice")
    ui.wait_answer()

    prefs.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("form", name="Sign in")).to_be_visible()
    assert page.context.cookies() == [] or all(
        c["name"] != "chatgate_session" for c in page.context.cookies()
    )
    assert ui.dialogs == []


def test_non_admin_sees_no_admin_page(ui: UiPage) -> None:
    page = ui.page
    sign_in(ui, "alice")
    page.wait_for_selector(".app[data-ready='true']")
    prefs = page.locator(".prefs")
    expect(prefs.get_by_role("button", name="Sign out")).to_be_visible()
    expect(prefs.get_by_role("link", name="Admin")).to_have_count(0)
    # The admin API refuses her session; the page says so instead of showing data.
    resp = page.request.get(ui.url + "/admin/keys")
    assert resp.status == 403
    assert resp.json()["error"]["type"] == "permission_error"
    page.goto(ui.url + "/#/admin")
    expect(page.locator(".admin[data-ready='true']")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_text("This page is for admins only.")
    expect(page.get_by_role("heading", name="Client keys")).to_have_count(0)


def test_admin_signs_in_and_opens_the_admin_page(ui: UiPage) -> None:
    page = ui.page
    sign_in(ui, "root")
    page.wait_for_selector(".app[data-ready='true']")
    page.locator(".prefs").get_by_role("link", name="Admin").click()
    expect(page).to_have_url(ui.url + "/#/admin")
    expect(page.get_by_role("heading", name="Administration", level=1)).to_be_visible()
    keys = page.locator("#admin-keys")
    expect(keys.get_by_text("No client keys yet")).to_be_visible()
    assert page.request.get(ui.url + "/admin/keys").status == 200
    page.get_by_role("link", name="Back to chat").click()
    page.wait_for_selector(".app[data-ready='true']")
    assert "#/admin" not in page.url


def test_no_session_at_all_is_401(ui_url: str) -> None:
    resp = httpx.get(ui_url + "/admin/keys")
    assert resp.status_code == 401 and resp.json()["error"]["type"] == "authentication_error"
