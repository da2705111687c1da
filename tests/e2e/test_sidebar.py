"""The conversation list: search finds an old message, rename, pin, delete — and they persist."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.e2e.conftest import UiPage
from tests.fakes.upstream import FakeUpstream


def _chat(ui: UiPage, fake: FakeUpstream, question: str, answer: str) -> None:
    fake.configure(content=answer, chunks=2)
    ui.page.get_by_role("button", name="New chat").click()
    ui.send(question)
    ui.page.locator(
        "article.msg-assistant[data-status='done'] .markdown", has_text=answer
    ).wait_for()


def test_search_finds_an_old_message(ui: UiPage, fake: FakeUpstream) -> None:
    page = ui.open()
    _chat(ui, fake, "Tell me about animals", "The zebra has black and white stripes.")
    _chat(ui, fake, "Tell me about fruit", "Apples are crunchy.")
    _chat(ui, fake, "Something else", "Nothing to see.")
    search = page.get_by_role("searchbox", name="Search chats")
    search.fill("ZEBRA")
    hit = page.locator(".hit", has_text="zebra")
    hit.wait_for()
    expect(page.locator(".hit")).to_have_count(1)
    assert "Tell me about animals" in hit.inner_text()
    hit.click()
    page.locator(".chat-title", has_text="Tell me about animals").wait_for()
    page.locator("article.msg-assistant", has_text="zebra").wait_for()
    search.fill("nothing-like-this")
    page.get_by_text("Nothing found").wait_for()
    search.press("Escape")
    expect(page.locator(".sidebar .conv")).to_have_count(3)


def test_rename_pin_delete(ui: UiPage, fake: FakeUpstream) -> None:
    page = ui.open()
    _chat(ui, fake, "First chat", "one")
    _chat(ui, fake, "Second chat", "two")
    first = page.locator(".conv", has_text="First chat")
    first.hover()
    first.get_by_role("button", name="Rename").click()
    field = page.get_by_role("textbox", name="Rename")
    field.fill("Renamed chat")
    field.press("Enter")
    page.locator(".conv-title", has_text="Renamed chat").wait_for()

    renamed = page.locator(".conv", has_text="Renamed chat")
    renamed.hover()
    renamed.get_by_role("button", name="Pin").click()
    pinned = page.locator("section[aria-label='Pinned'] .conv")
    pinned.first.wait_for()
    assert pinned.count() == 1 and "Renamed chat" in pinned.inner_text()

    second = page.locator(".conv", has_text="Second chat")
    second.hover()
    second.get_by_role("button", name="Delete").click()
    page.get_by_role("button", name="Delete").filter(has_text="Delete").last.click()
    page.locator(".conv", has_text="Second chat").wait_for(state="detached")
    assert ui.dialogs == []  # confirmation is in the page, not a browser dialog

    ui.reload()  # waits for the delete to be stored: the list reacts before storage does
    page.locator("section[aria-label='Pinned'] .conv", has_text="Renamed chat").wait_for()
    assert page.locator(".conv", has_text="Second chat").count() == 0
