"""The UI on the server's conversations API (/api): history on the server, generation owned by
the server — reload mid-answer and it continues. Skipped while the server has no /api (the UI
then runs in its local mode, which the other tests cover)."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.conftest import UiPage
from tests.fakes.upstream import FakeUpstream


def test_server_mode_send_reload_mid_answer_and_branch(
    server_ui: UiPage, fake: FakeUpstream
) -> None:
    ui = server_ui
    page = ui.open()
    assert "server" in page.locator(".mode-note").inner_text()
    fake.configure(chunks=120, chunk_delay_ms=25)  # about 3 s
    ui.send("Kept on the server")
    page.wait_for_selector("article.msg-assistant[data-status='streaming'] .markdown p")
    assert "#/c/" in page.url
    page.reload()  # mid-answer: the server keeps generating; the page follows it again
    page.wait_for_selector(".app[data-ready='true']")
    page.locator("article.msg-user", has_text="Kept on the server").wait_for()
    answer = page.locator("article.msg-assistant").last
    expect(answer.locator(".markdown")).to_contain_text("tok119", timeout=15_000)
    expect(answer).to_have_attribute("data-status", "done", timeout=15_000)
    text = answer.locator(".markdown").inner_text()
    assert text.count("tok0 ") == 1 and text.strip().endswith("tok119")

    fake.configure(content="A second version", chunks=3, chunk_delay_ms=0)
    answer.get_by_role("button", name="Regenerate").click()
    page.locator("article.msg-assistant .markdown", has_text="A second version").wait_for()
    last = page.locator("article.msg-assistant").last
    expect(last).to_have_attribute("data-status", "done")
    expect(last.locator(".branch-count")).to_have_text("2 / 2")
    last.get_by_role("button", name="Previous version").click()
    expect(page.locator("article.msg-assistant").last.locator(".markdown")).to_contain_text(
        "tok119"
    )


def test_server_mode_stop(server_ui: UiPage, fake: FakeUpstream) -> None:
    ui = server_ui
    page = ui.open()
    fake.configure(chunks=400, chunk_delay_ms=25)
    ui.send("Stop me")
    page.wait_for_selector("article.msg-assistant[data-status='streaming'] .markdown p")
    page.keyboard.press("Escape")
    answer = page.locator("article.msg-assistant").last
    expect(answer).to_have_attribute("data-status", "stopped", timeout=10_000)
    assert "tok399" not in answer.inner_text()
