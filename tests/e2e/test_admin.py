"""The admin page (#/admin) in a real browser, on a chatgate of its own with the cache on, in the
zero-config single-user mode (the one implicit user is the admin): create a key (its secret shown
once), revoke it in the page; usage of requests made through /v1 with a key; a user's usage and
limits, set and cleared in the page; cache stats and Flush; the sidebar link; the mobile layout
and dark theme. Confirmations are in the page, never browser dialogs."""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from chatgate.app import create_app
from chatgate.storage import Database, UsageRepository, UsageRow
from tests.conftest import gateway_config
from tests.e2e.conftest import ARTIFACTS, UiPage
from tests.fakes.upstream import FakeUpstream
from tests.server import ServerThread

XRW = {"X-Requested-With": "chatgate-tests"}


@pytest.fixture(scope="module")
def db_url() -> str:
    """The database of this module's chatgate."""
    return f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='chatgate-')}/db"


@pytest.fixture(scope="module")
def ui_url(fake_server: FakeUpstream, db_url: str) -> Iterator[str]:
    """This module's chatgate (it overrides the shared one for `new_page`): cache on, loopback,
    no users — single-user mode, no admin key."""
    root = tempfile.mkdtemp(prefix="chatgate-")
    config = gateway_config(
        fake_server.base_url,
        database={"url": db_url},
        cache={"enabled": True, "dir": f"{root}/cache"},
        auth={"key_cache_ttl": 0},
    )
    with ServerThread(create_app(config)) as url:
        yield url


@pytest.fixture
def admin(new_page: Callable[..., UiPage]) -> Callable[..., UiPage]:
    def open_admin(**kwargs: Any) -> UiPage:
        ui = new_page(**kwargs)
        ui.page.goto(ui.url + "/#/admin")
        ui.page.locator(".admin[data-ready='true']").wait_for()
        expect(ui.page.get_by_role("heading", name="Administration", level=1)).to_be_visible()
        return ui

    return open_admin


def chat(url: str, key: str | None, content: str) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    body = {"model": "fake-model", "messages": [{"role": "user", "content": content}]}
    resp = httpx.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp


def api_key(url: str, name: str) -> dict[str, Any]:
    resp = httpx.post(url + "/admin/keys", json={"name": name}, timeout=10)
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    return created


def test_create_a_key_see_it_once_and_revoke_it(admin: Callable[..., UiPage], ui_url: str) -> None:
    ui = admin()
    page = ui.page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    keys = page.locator("#admin-keys")
    form = keys.get_by_role("form", name="Create a key")
    form.get_by_label("Name").fill("e2e-bot")
    form.get_by_label("Requests per minute").fill("60")
    form.get_by_label("Tokens per minute").fill("100000")
    form.get_by_label("Token budget").fill("50000")
    form.get_by_label("Models").fill("fake-model")
    form.get_by_label("Expires after (days)").fill("7")
    form.get_by_role("button", name="Create key").click()

    secret_box = keys.locator(".admin-secret")
    expect(secret_box).to_contain_text("won't be shown again")
    secret = secret_box.get_by_label("The new key").inner_text().strip()
    assert secret.startswith("sk-cg-")
    secret_box.get_by_role("button", name="Copy key").click()
    expect(secret_box.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == secret

    row = keys.locator("tbody tr", has_text="e2e-bot")
    expect(row).to_have_attribute("data-state", "active")
    expect(row).to_contain_text("60 rpm · 100,000 tpm")
    expect(row).to_contain_text("fake-model")
    expect(row).to_contain_text("0 / 50,000")
    expect(row).to_contain_text("Active")
    prefix = row.locator("code").inner_text().rstrip("…")
    assert secret.startswith(prefix) and len(prefix) < len(secret)
    key_id = row.get_attribute("data-key-id")

    secret_box.get_by_role("button", name="Done").click()
    expect(keys.locator(".admin-secret")).to_have_count(0)
    assert secret not in page.content()  # gone: shown that once only
    page.reload()
    page.locator(".admin[data-ready='true']").wait_for()
    expect(keys.locator("tbody tr", has_text="e2e-bot")).to_be_visible()
    assert secret not in page.content()

    # Revoke, confirmed in the page; Cancel first leaves it alone.
    row = keys.locator("tbody tr", has_text="e2e-bot")
    row.get_by_role("button", name="Revoke").click()
    question = row.get_by_role(
        "group", name="Revoke “e2e-bot”? Programs using it stop working at once."
    )
    expect(question).to_be_visible()
    expect(question.get_by_role("button", name="Cancel")).to_be_focused()
    question.get_by_role("button", name="Cancel").click()
    expect(row).to_have_attribute("data-state", "active")
    row.get_by_role("button", name="Revoke").click()
    row.get_by_role("group").get_by_role("button", name="Revoke").click()
    expect(row).to_have_attribute("data-state", "revoked")
    expect(row).to_contain_text("Revoked")
    expect(row.get_by_role("button", name="Revoke")).to_have_count(0)
    record = httpx.get(f"{ui_url}/admin/keys/{key_id}").json()
    assert record["active"] is False and record["revoked_at"]
    assert ui.dialogs == []


def test_a_bad_limit_is_named_in_the_page(admin: Callable[..., UiPage]) -> None:
    ui = admin()
    form = ui.page.locator("#admin-keys").get_by_role("form", name="Create a key")
    form.get_by_label("Name").fill("bad-limits")
    form.get_by_label("Requests per minute").fill("0")
    form.get_by_role("button", name="Create key").click()
    expect(form.get_by_role("alert")).to_contain_text("Requests per minute")
    expect(form.get_by_label("Requests per minute")).to_have_attribute("aria-invalid", "true")
    expect(ui.page.locator("#admin-keys tbody tr", has_text="bad-limits")).to_have_count(0)


def test_usage_shows_requests_made_with_a_key(
    admin: Callable[..., UiPage], ui_url: str, fake: FakeUpstream
) -> None:
    created = api_key(ui_url, "usage-bot")
    spent = sum(
        chat(ui_url, created["key"], f"usage {i} {uuid.uuid4()}").json()["usage"]["total_tokens"]
        for i in range(2)
    )
    chat(ui_url, None, f"anonymous {uuid.uuid4()}")
    deadline = time.monotonic() + 10
    while True:  # recorded when each response ends: allow a moment
        report = httpx.get(f"{ui_url}/admin/usage?key_id={created['id']}").json()
        if report["totals"] and report["totals"][0]["requests"] == 2:
            break
        assert time.monotonic() < deadline, report
        time.sleep(0.05)

    ui = admin()
    usage = ui.page.locator("#admin-usage")
    expect(usage.get_by_label("Period")).to_have_value("7d")
    per_key = usage.get_by_role("region", name="Per key")
    row = per_key.locator(f"tbody tr[data-key-id='{created['id']}']")
    expect(row.locator("th")).to_have_text("usage-bot")
    cells = row.locator("td")
    expect(cells.nth(0)).to_have_text("2")
    expect(cells.nth(3)).to_have_text(f"{spent:,}")
    expect(per_key.locator("tbody tr[data-key-id='']")).to_contain_text("Without a key")
    per_day = usage.get_by_role("region", name="Per model and day")
    day_row = per_day.locator(f"tbody tr[data-key-id='{created['id']}']")
    expect(day_row).to_contain_text("fake-model")
    expect(day_row).to_contain_text("usage-bot")
    expect(day_row.locator("td").first).to_have_text(time.strftime("%Y-%m-%d", time.gmtime()))
    # Every period includes today; the table follows the choice.
    usage.get_by_label("Period").select_option("all")
    expect(row.locator("td").nth(0)).to_have_text("2")


async def _add_usage(db_url: str, user_id: str) -> None:
    # Written straight to the database: this is about showing a user's usage, not about which
    # door records it.
    async with Database(db_url) as db:
        await UsageRepository(db).add_batch(
            [UsageRow(None, "fake-model", 40, 2, requests=3, user_id=user_id)]
        )


def test_a_users_usage_and_limits(admin: Callable[..., UiPage], ui_url: str, db_url: str) -> None:
    local = httpx.get(ui_url + "/api/me", timeout=10).json()  # the implicit user, made now
    users = {u["name"]: u for u in httpx.get(ui_url + "/admin/users", timeout=10).json()["data"]}
    user_id = users["local"]["id"]
    assert local["name"] == "local" and users["local"]["implicit"] is True
    # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _add_usage(db_url, user_id)).result()
    clear = {"rpm": None, "tpm": None, "budget_tokens": None, "models": None}
    try:
        ui = admin()
        page = ui.page
        section = page.locator("#admin-users")
        row = section.locator(f"tbody tr[data-user-id='{user_id}']")
        expect(row.locator("th")).to_contain_text("local")
        cells = row.locator("td")
        expect(cells.nth(0)).to_have_text("3")  # requests
        expect(cells.nth(1)).to_have_text("42")  # tokens
        expect(cells.nth(2)).to_have_text("No budget")
        expect(cells.nth(3)).to_have_attribute("data-spend", "true")  # spend · saved
        expect(cells.nth(4)).to_have_text("No limits")
        expect(cells.nth(5)).to_have_text("All models")

        # A wrong value is named in the form and nothing is sent.
        row.get_by_role("button", name="Edit limits").click()
        form = section.get_by_role("form", name="Limits of “local”")
        expect(form.get_by_label("Requests per minute")).to_be_focused()
        form.get_by_label("Requests per minute").fill("0")
        form.get_by_role("button", name="Save").click()
        expect(form.get_by_role("alert")).to_contain_text("Requests per minute")
        expect(form.get_by_label("Requests per minute")).to_have_attribute("aria-invalid", "true")

        form.get_by_label("Requests per minute").fill("30")
        form.get_by_label("Token budget").fill("1000")
        form.get_by_label("Models").fill("fake-model, local")
        form.get_by_role("button", name="Save").click()
        expect(form).to_have_count(0)
        expect(section.get_by_role("status")).to_have_text("Limits of “local” saved")
        expect(cells.nth(2)).to_have_text("42 / 1,000")
        expect(cells.nth(4)).to_have_text("30 rpm")
        expect(cells.nth(5)).to_have_text("fake-model, local")
        stored = httpx.get(f"{ui_url}/admin/users/{user_id}", timeout=10).json()
        assert (stored["rpm"], stored["tpm"], stored["budget_tokens"]) == (30, None, 1000)
        assert sorted(stored["models"]) == ["fake-model", "local"]

        # The form opens with the limits as they are; emptied fields clear them.
        row.get_by_role("button", name="Edit limits").click()
        expect(form.get_by_label("Token budget")).to_have_value("1000")
        for label in ("Requests per minute", "Token budget", "Models"):
            form.get_by_label(label).fill("")
        form.get_by_role("button", name="Save").click()
        expect(cells.nth(2)).to_have_text("No budget")
        expect(cells.nth(4)).to_have_text("No limits")
        expect(cells.nth(5)).to_have_text("All models")
        stored = httpx.get(f"{ui_url}/admin/users/{user_id}", timeout=10).json()
        assert {k: stored[k] for k in clear} == clear

        # Cancel leaves them alone; the usage section has the user's row too.
        row.get_by_role("button", name="Edit limits").click()
        form.get_by_label("Requests per minute").fill("5")
        form.get_by_role("button", name="Cancel").click()
        expect(form).to_have_count(0)
        expect(cells.nth(4)).to_have_text("No limits")
        per_user = page.locator("#admin-usage").get_by_role("region", name="Per user")
        user_row = per_user.locator(f"tbody tr[data-user-id='{user_id}']")
        expect(user_row.locator("th")).to_have_text("local")
        expect(user_row.locator("td").nth(0)).to_have_text("3")
        expect(user_row.locator("td").nth(3)).to_have_text("42")
        day_row = page.locator("#admin-usage").get_by_role("region", name="Per model and day")
        expect(day_row.locator(f"tbody tr[data-user-id='{user_id}']")).to_contain_text("local")
        assert ui.dialogs == []
    finally:
        httpx.patch(f"{ui_url}/admin/users/{user_id}", json=clear, timeout=10)


def test_cache_stats_and_flush(
    admin: Callable[..., UiPage], ui_url: str, fake: FakeUpstream
) -> None:
    content = f"cache me {uuid.uuid4()}"
    assert chat(ui_url, None, content).headers["x-chatgate-cache"] == "miss"
    assert chat(ui_url, None, content).headers["x-chatgate-cache"] == "hit"

    ui = admin()
    cache = ui.page.locator("#admin-cache")
    memory = cache.locator("tbody tr[data-tier='memory']")
    expect(memory).to_be_visible()
    assert int(memory.locator("td").first.get_attribute("data-entries") or 0) >= 1
    assert int(memory.locator("td").nth(2).inner_text().replace(",", "")) >= 1  # hits
    expect(cache.locator("tbody tr[data-tier='disk']")).to_be_visible()

    cache.get_by_role("button", name="Flush cache").click()
    question = cache.get_by_role("group", name="Remove every cached answer from every tier?")
    question.get_by_role("button", name="Flush").click()
    expect(cache.get_by_role("status")).to_contain_text("Removed")
    for tier in ("memory", "disk"):
        expect(cache.locator(f"tbody tr[data-tier='{tier}'] td").first).to_have_attribute(
            "data-entries", "0"
        )
    stats = httpx.get(ui_url + "/admin/cache").json()
    assert all(t["entries"] == 0 for t in stats["tiers"])
    assert chat(ui_url, None, content).headers["x-chatgate-cache"] == "miss"
    assert ui.dialogs == []


def test_upstreams_are_listed_masked(admin: Callable[..., UiPage]) -> None:
    ui = admin()
    upstreams = ui.page.locator("#admin-upstreams")
    fake_row = upstreams.locator("tbody tr[data-provider='fake']")
    expect(fake_row).to_contain_text("sk-…6789")
    expect(fake_row).to_contain_text("ok")
    expect(upstreams.locator("tbody tr[data-provider='dead']")).to_contain_text("No keys")
    assert "sk-fake-upstream-key-0123456789" not in ui.page.content()


def test_sidebar_link_and_back(new_page: Callable[..., UiPage]) -> None:
    ui = new_page(local=False)
    page = ui.open()
    prefs = page.locator(".prefs")
    expect(prefs.get_by_role("button", name="Sign out")).to_have_count(0)  # nobody to sign out
    prefs.get_by_role("link", name="Admin").click()
    page.locator(".admin[data-ready='true']").wait_for()
    expect(page.get_by_role("heading", name="Client keys")).to_be_visible()
    page.get_by_role("link", name="Back to chat").click()
    page.wait_for_selector(".app[data-ready='true']")
    assert not page.url.endswith("#/admin")


def test_mobile_dark_and_accessible(admin: Callable[..., UiPage], ui_url: str) -> None:
    api_key(ui_url, "a-key-with-a-rather-long-name-for-the-mobile-layout")
    ui = admin(viewport={"width": 390, "height": 844}, color_scheme="dark")
    page = ui.page
    page.locator("#admin-keys tbody tr").first.wait_for()
    page.locator("#admin-upstreams tbody tr").first.wait_for()
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    # The page never scrolls sideways; wide tables scroll inside their own frame.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert page.evaluate(
        "[...document.querySelectorAll('.admin-section')]"
        ".every(s => s.scrollWidth <= s.clientWidth + 1)"
    )
    # Every button and field has a name; every table has column headers and a caption.
    unnamed = page.evaluate(
        """[...document.querySelectorAll('.admin button, .admin input, .admin select')]
        .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                     && !e.textContent.trim()).map(e => e.outerHTML)"""
    )
    assert unnamed == []
    assert page.evaluate(
        """[...document.querySelectorAll('.admin table')].every(t =>
            t.caption && t.caption.textContent.trim() && t.querySelector('thead th[scope=col]'))"""
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "admin-mobile-dark.png"), full_page=True)
    desktop = admin()
    desktop.page.locator("#admin-keys tbody tr").first.wait_for()
    desktop.page.screenshot(path=str(ARTIFACTS / "admin-light.png"), full_page=True)


def test_a_server_with_an_admin_key_asks_for_it(browser: Any, fake_server: FakeUpstream) -> None:
    """Single-user mode does not waive a configured admin key: the page asks for it (kept in
    this tab), says so when it is wrong, and works once it is right."""
    admin_key = "e2e-admin-key-0123456789"
    config = gateway_config(fake_server.base_url, auth={"admin_key": admin_key})
    with ServerThread(create_app(config)) as url:
        ctx = browser.new_context(viewport={"width": 1280, "height": 800})
        try:
            ui = UiPage(ctx.new_page(), url)
            page = ui.page
            page.goto(url + "/#/admin")
            form = page.get_by_role("form", name="Admin key")
            form.get_by_label("Admin key").fill("not-the-key")
            form.get_by_role("button", name="Continue").click()
            expect(form.get_by_role("alert")).to_have_text("That admin key was not accepted.")
            form.get_by_label("Admin key").fill(admin_key)
            form.get_by_role("button", name="Continue").click()
            expect(page.locator("#admin-keys").get_by_text("No client keys yet")).to_be_visible()
            expect(page.locator("#admin-upstreams tbody tr").first).to_be_visible()
            assert page.evaluate("sessionStorage.getItem('chatgate.adminKey')") == admin_key
            assert ui.errors == [] and ui.dialogs == []
        finally:
            ctx.close()
