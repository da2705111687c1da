"""Side by side in the browser (server mode): one prompt to two models from the fake upstream,
their answers stream in columns, a reload mid-answer brings the columns back and loses nothing,
and keeping one makes it the conversation's branch (the other stays a sibling)."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.conftest import UiPage
from tests.fakes.upstream import FakeUpstream


def test_compare_two_models_reload_mid_answer_and_keep_one(
    server_ui: UiPage, fake: FakeUpstream
) -> None:
    ui = server_ui
    page = ui.open()
    page.get_by_role("button", name="Compare models side by side").click()
    chooser = page.locator(".compare-chooser")
    chooser.get_by_label("fake-model", exact=True).check()
    chooser.get_by_label("pirate", exact=True).check()
    fake.configure(chunks=100, chunk_delay_ms=25)  # about 2.5 s each
    before = len(fake.requests)
    ui.send("Which of you is better?")

    columns = page.locator(".side-by-side .sbs-column")
    expect(columns).to_have_count(2)
    expect(columns.nth(0)).to_have_attribute("data-model", "fake-model")
    expect(columns.nth(1)).to_have_attribute("data-model", "pirate")
    page.wait_for_selector(".sbs-column article[data-status='streaming'] .markdown p")
    # One user message, both answers streaming at once.
    expect(page.locator("article.msg-user")).to_have_count(1)

    page.reload()  # mid-answer: the server keeps writing both; the page follows both again
    page.wait_for_selector(".app[data-ready='true']")
    columns = page.locator(".side-by-side .sbs-column")
    expect(columns).to_have_count(2, timeout=10_000)
    for i in range(2):
        answer = columns.nth(i).locator("article.msg-assistant")
        expect(answer).to_have_attribute("data-status", "done", timeout=20_000)
        text = answer.locator(".markdown").inner_text()
        assert text.count("tok0 ") == 1 and text.strip().endswith("tok99"), text[-80:]
    calls = fake.requests[before:]
    assert len(calls) == 2
    assert all(
        c["body"]["messages"][-1] == {"role": "user", "content": "Which of you is better?"}
        for c in calls
    )

    columns.nth(1).get_by_role("button", name="Keep pirate's answer").click()
    expect(page.locator(".side-by-side")).to_have_count(0)
    kept = page.locator("article.msg-assistant").last
    expect(kept.locator(".msg-author")).to_have_text("pirate")
    expect(kept.locator(".branch-count")).to_have_text("2 / 2")
    ui.reload()
    kept = page.locator("article.msg-assistant").last
    expect(kept.locator(".msg-author")).to_have_text("pirate")
    expect(page.locator(".side-by-side")).to_have_count(0)
    # The other answer stays a sibling.
    kept.get_by_role("button", name="Previous version").click()
    expect(page.locator("article.msg-assistant").last.locator(".msg-author")).to_have_text(
        "fake-model"
    )


def test_compare_in_the_local_mode_streams_both_from_v1_and_keeps_one(
    ui: UiPage, fake: FakeUpstream
) -> None:
    """Conversations in the browser: each model streams from /v1 itself; keep is a branch."""
    page = ui.open()
    page.get_by_role("button", name="Compare models side by side").click()
    chooser = page.locator(".compare-chooser")
    chooser.get_by_label("fake-model", exact=True).check()
    chooser.get_by_label("pirate", exact=True).check()
    fake.configure(chunks=5)
    ui.send("Local compare")
    columns = page.locator(".side-by-side .sbs-column")
    expect(columns).to_have_count(2)
    for i in range(2):
        expect(columns.nth(i).locator("article.msg-assistant")).to_have_attribute(
            "data-status", "done", timeout=15_000
        )
    models = {r["body"]["model"] for r in fake.requests[-2:]}
    assert models == {"fake-model"}  # pirate is fake-model upstream, with its system prompt
    assert any(m["role"] == "system" for r in fake.requests[-2:] for m in r["body"]["messages"])
    columns.nth(1).get_by_role("button", name="Keep pirate's answer").click()
    expect(page.locator(".side-by-side")).to_have_count(0)
    ui.reload()
    kept = page.locator("article.msg-assistant").last
    expect(kept.locator(".msg-author")).to_have_text("pirate")
    expect(kept.locator(".branch-count")).to_have_text("2 / 2")
