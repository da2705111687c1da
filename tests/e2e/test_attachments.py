"""Attachments in the browser (server mode): drop an image and send it to a vision model (the
fake upstream records an ``image_url`` part), the composer refuses images for a model that cannot
see them, and a PDF attached to a question comes back as a citation under the answer (click: the
passage from page 3). Reload mid-answer loses nothing.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from chatgate.app import create_app
from tests.conftest import gateway_config
from tests.e2e.conftest import WATCH, UiPage
from tests.fakes.upstream import FakeUpstream
from tests.server import ServerThread

VISION = "gpt-4o-eyes"  # a vision model by its name (chatgate.files.vision)
BLIND = "fake-model"


@pytest.fixture(scope="module")
def files_url(fake_server: FakeUpstream) -> Iterator[str]:
    models = {VISION: {"provider": "fake", "model": "fake-model"}}
    with ServerThread(create_app(gateway_config(fake_server.base_url, models=models))) as url:
        yield url


@pytest.fixture
def files_ui(browser: Any, files_url: str) -> Iterator[UiPage]:
    ctx = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 800})
    ctx.add_init_script(WATCH)
    ui = UiPage(ctx.new_page(), files_url)
    try:
        yield ui
        assert not ui.errors, f"uncaught errors in the page: {ui.errors}"
        assert not ui.csp_violations(), f"CSP violations: {ui.csp_violations()}"
    finally:
        ctx.close()


def drop(page: Any, name: str, mime: str, data: bytes) -> None:
    """Drop a file on the composer, as a file dragged from the desktop is dropped."""
    transfer = page.evaluate_handle(
        """([name, mime, b64]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], name, { type: mime }));
            return dt;
        }""",
        [name, mime, base64.b64encode(data).decode()],
    )
    page.dispatch_event("form.composer", "drop", {"dataTransfer": transfer})


def test_drop_an_image_and_send_it_to_a_vision_model(files_ui: UiPage, fake: FakeUpstream) -> None:
    from tests.files.make import png  # with the files backend

    ui = files_ui
    page = ui.open(model=BLIND)
    drop(page, "dot.png", "image/png", png())
    tray = page.locator(".att-tray .att-image")
    expect(tray).to_have_count(1)
    expect(tray.locator("img.att-thumb")).to_have_attribute("src", re.compile(r"^blob:"))
    tray.and_(page.locator("[data-state='uploaded']")).wait_for()
    # The chosen model cannot see images: a clear refusal before anything is sent.
    ui.send("What is in the picture?")
    expect(page.locator(".composer-problem")).to_contain_text(f"{BLIND} cannot see images")
    assert not page.locator("article.msg-user").count()
    assert BLIND + " (text only)" in page.locator(".model-picker select").inner_text()

    page.locator(".model-picker select").select_option(VISION)
    fake.configure(chunks=60, chunk_delay_ms=25)
    before = len(fake.requests)
    ui.send("What is in the picture?")
    page.wait_for_selector("article.msg-assistant[data-status='streaming'] .markdown p")
    page.reload()  # mid-answer
    page.wait_for_selector(".app[data-ready='true']")
    answer = ui.wait_answer(timeout=20_000)
    expect(answer.locator(".markdown")).to_contain_text("tok59")
    sent = fake.requests[before:]
    assert len(sent) == 1
    content = sent[0]["body"]["messages"][-1]["content"]
    assert isinstance(content, list), content
    parts = {p["type"] for p in content}
    assert parts == {"text", "image_url"}, content
    # In history: the image as a thumbnail served by /api/files (allowed by the CSP).
    thumb = page.locator("article.msg-user .msg-attachments img.att-thumb")
    expect(thumb).to_have_count(1)
    assert "/api/files/" in (thumb.get_attribute("src") or "")
    page.wait_for_function(
        "() => { const i = document.querySelector('article.msg-user img.att-thumb');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )


def test_attach_a_pdf_ask_and_see_the_citation(files_ui: UiPage, fake: FakeUpstream) -> None:
    from tests.files.make import pdf  # with the files backend

    ui = files_ui
    page = ui.open(model=BLIND)
    filler = "\n".join(f"Chapter notes, line {i}: nothing about herons." for i in range(30))
    fact = "The launch code of project Heron is 7341-KESTREL."
    data = pdf([filler, filler, f"Appendix.\n{fact}\nEnd."])
    page.locator("[data-testid='file-input']").set_input_files(
        {"name": "heron.pdf", "mimeType": "application/pdf", "buffer": data}
    )
    chip = page.locator(".att-tray .att-document")
    expect(chip).to_contain_text("heron.pdf")
    chip.and_(page.locator("[data-state='uploaded']")).wait_for()
    expect(chip.locator(".att-status")).to_have_count(0, timeout=20_000)  # indexed

    fake.configure(chunks=40, chunk_delay_ms=25)
    before = len(fake.requests)
    ui.send("What is the launch code of project Heron?")
    page.wait_for_selector("article.msg-assistant[data-status='streaming'] .markdown p")
    page.reload()  # mid-answer
    page.wait_for_selector(".app[data-ready='true']")
    answer = ui.wait_answer(timeout=20_000)
    prompt = str(fake.requests[before]["body"]["messages"])
    assert "7341-KESTREL" in prompt  # the page-3 passage went with the question
    expect(page.locator("article.msg-user .att-document")).to_contain_text("heron.pdf")
    # A small document may go whole (a citation per page): the one of page 3 holds the fact.
    cite = answer.locator(".citations .cite-chip", has_text="p. 3")
    expect(cite).to_have_count(1)
    expect(cite).to_contain_text("heron.pdf")
    cite.click()
    expect(answer.locator(".passage-popover")).to_contain_text("7341-KESTREL")
    page.keyboard.press("Escape")
    expect(answer.locator(".passage-popover")).to_have_count(0)
