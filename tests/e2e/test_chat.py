"""The chat in a real browser: streaming, stop, regenerate and branches, edit, reasoning, i18n."""

from __future__ import annotations

import time
from collections.abc import Callable

from playwright.sync_api import expect

from tests.e2e.conftest import UiPage
from tests.fakes.upstream import FakeUpstream


def test_page_is_served_with_a_strict_csp(ui: UiPage) -> None:
    response = ui.page.goto(ui.url + "/")
    assert response is not None and response.status == 200
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "object-src 'none'" in csp
    ui.page.wait_for_selector(".app[data-ready='true']")
    # A deep link is the same app (SPA fallback), the API's 404s stay JSON.
    deep = ui.page.goto(ui.url + "/c/some-chat")
    assert deep is not None and deep.status == 200
    ui.page.wait_for_selector(".app[data-ready='true']")


def test_send_a_message_and_see_it_stream(ui: UiPage, fake: FakeUpstream) -> None:
    words = [f"word{i}" for i in range(60)]
    fake.configure(content=" ".join(words), chunks=60, chunk_delay_ms=40)
    page = ui.open()
    ui.send("Hello there")
    page.locator("article.msg-user").filter(has_text="Hello there").wait_for()
    answer = ui.last_answer()
    page.wait_for_selector("article.msg-assistant[data-status='streaming'] .markdown p")
    # Seen growing while it streams, not only at the end.
    seen: list[int] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status = answer.get_attribute("data-status")
        seen.append(len(answer.locator(".msg-body").inner_text()))
        if status == "done":
            break
        page.wait_for_timeout(100)
    partial = [n for n in seen[:-1] if 0 < n < seen[-1]]
    assert len(set(partial)) >= 3, f"no visible streaming: {seen}"
    ui.wait_answer()
    assert answer.locator(".markdown").inner_text().strip() == " ".join(words)
    assert "prompt" in answer.get_by_test_id("usage").inner_text()
    # The chat is in the list, titled by the first message, and the address names it.
    page.locator(".sidebar .conv-title", has_text="Hello there").wait_for()
    assert "#/c/" in page.url


def test_stop_keeps_the_partial_answer(ui: UiPage, fake: FakeUpstream) -> None:
    fake.configure(chunks=400, chunk_delay_ms=25)  # about 10 s
    page = ui.open()
    ui.send("Tell me a long story")
    page.wait_for_selector("article.msg-assistant[data-status='streaming'] .markdown p")
    page.wait_for_timeout(300)
    before = fake.cancelled
    page.keyboard.press("Escape")
    answer = ui.wait_answer("stopped", timeout=5_000)
    text = answer.locator(".markdown").inner_text()
    assert text.startswith("tok0 ") and "tok399" not in text
    assert answer.locator(".msg-flag").inner_text() in ("Stopped",)
    deadline = time.monotonic() + 5
    while fake.cancelled == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake.cancelled > before, "the upstream call was not cancelled"
    # The stop button is gone; the composer is usable again.
    page.get_by_role("button", name="Send").wait_for()


def test_stop_button(ui: UiPage, fake: FakeUpstream) -> None:
    fake.configure(chunks=400, chunk_delay_ms=25)
    page = ui.open()
    ui.send("Another long one")
    page.wait_for_selector("article.msg-assistant[data-status='streaming'] .markdown p")
    page.get_by_role("button", name="Stop").click()
    ui.wait_answer("stopped", timeout=5_000)


def test_regenerate_and_switch_branches(ui: UiPage, fake: FakeUpstream) -> None:
    fake.configure(content="First answer", chunks=3)
    page = ui.open()
    ui.send("Question")
    ui.wait_answer()
    fake.configure(content="Second answer", chunks=3)
    ui.last_answer().get_by_role("button", name="Regenerate").click()
    page.locator("article.msg-assistant .markdown", has_text="Second answer").wait_for()
    answer = ui.wait_answer()
    assert page.locator("article.msg-assistant").count() == 1
    assert answer.locator(".branch-count").inner_text() == "2 / 2"
    answer.get_by_role("button", name="Previous version").click()
    page.locator("article.msg-assistant .markdown", has_text="First answer").wait_for()
    assert ui.last_answer().locator(".branch-count").inner_text() == "1 / 2"
    ui.last_answer().get_by_role("button", name="Next version").click()
    page.locator("article.msg-assistant .markdown", has_text="Second answer").wait_for()
    # The upstream got the same question twice.
    asked = [r["body"]["messages"][-1]["content"] for r in fake.requests if r.get("body")]
    assert asked.count("Question") == 2


def test_edit_and_resend(ui: UiPage, fake: FakeUpstream) -> None:
    fake.configure(content="Answer one", chunks=2)
    page = ui.open()
    ui.send("Original question")
    ui.wait_answer()
    fake.configure(content="Answer two", chunks=2)
    user = page.locator("article.msg-user").last
    user.hover()
    user.get_by_role("button", name="Edit").click()
    editor = user.locator(".editor textarea")
    editor.fill("Edited question")
    editor.press("Enter")
    page.locator("article.msg-user", has_text="Edited question").wait_for()
    page.locator("article.msg-assistant .markdown", has_text="Answer two").wait_for()
    ui.wait_answer()
    user = page.locator("article.msg-user").last
    assert user.locator(".branch-count").inner_text() == "2 / 2"
    assert fake.requests[-1]["body"]["messages"][-1]["content"] == "Edited question"
    user.get_by_role("button", name="Previous version").click()
    page.locator("article.msg-user", has_text="Original question").wait_for()
    page.locator("article.msg-assistant .markdown", has_text="Answer one").wait_for()


def test_reasoning_is_live_then_collapses(ui: UiPage, fake: FakeUpstream) -> None:
    fake.configure(
        reasoning="Let me think about this step by step, carefully and slowly. " * 3,
        content="The answer is 42.",
        chunks=40,
        chunk_delay_ms=50,
    )
    page = ui.open()
    ui.send("What is the answer?")
    block = page.get_by_test_id("reasoning")
    toggle = block.locator("button.reasoning-toggle")
    block.and_(page.locator("[data-live='true']")).wait_for(timeout=5_000)
    assert toggle.get_attribute("aria-expanded") == "true"
    assert block.locator(".reasoning-body").is_visible()
    expect(block.locator(".reasoning-body")).to_contain_text("Let me think about")
    # The answer starts: the block folds away.
    page.locator("article.msg-assistant .markdown", has_text="The answer").wait_for()
    assert toggle.get_attribute("aria-expanded") == "false"
    assert not block.locator(".reasoning-body").is_visible()
    ui.wait_answer()
    # Finished: still folded, opens on demand with the whole reasoning.
    toggle = page.get_by_test_id("reasoning").locator("button.reasoning-toggle")
    assert toggle.get_attribute("aria-expanded") == "false"
    toggle.click()
    body = page.get_by_test_id("reasoning").locator(".reasoning-body")
    assert body.inner_text().count("step by step") == 3


def test_russian_ui_and_switching_language(
    new_page: Callable[..., UiPage], fake: FakeUpstream
) -> None:
    ui = new_page(locale="ru-RU")
    page = ui.open()
    assert page.evaluate("document.documentElement.lang") == "ru"
    page.get_by_role("button", name="Новый чат").wait_for()
    assert page.locator(".composer textarea").get_attribute("placeholder") == "Напишите сообщение…"
    fake.configure(content="Привет!", chunks=2)
    ui.send("Привет")
    ui.wait_answer()
    assert ui.last_answer().get_by_role("button", name="Сгенерировать заново").is_visible()
    page.locator(".prefs select").nth(1).select_option("zh")
    page.get_by_role("button", name="新对话").wait_for()
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    page.reload()
    page.get_by_role("button", name="新对话").wait_for()  # the choice is remembered


def test_keyboard_shortcuts(ui: UiPage, fake: FakeUpstream) -> None:
    fake.configure(content="ok", chunks=1)
    page = ui.open()
    box = page.locator(".composer textarea")
    box.click()
    page.keyboard.type("line one")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("line two")
    assert box.input_value() == "line one\nline two"
    page.keyboard.press("Enter")
    page.locator("article.msg-user", has_text="line two").wait_for()
    ui.wait_answer()
    assert page.locator(".chat-title").inner_text() == "line one"
    page.keyboard.press("Control+Shift+O")
    page.locator(".empty h2").wait_for()
    assert page.evaluate("document.activeElement === document.querySelector('.composer textarea')")


def test_an_upstream_error_mid_answer_is_shown(ui: UiPage, fake: FakeUpstream) -> None:
    # Slow enough that the first pieces are surely on their way to the page before the error
    # (an upstream failing before its first byte is retried or answered as an HTTP error).
    fake.configure(chunks=20, error_event_after=6, chunk_delay_ms=150)
    page = ui.open()
    ui.send("This will break")
    answer = ui.wait_answer("error")
    assert answer.locator(".markdown").inner_text().startswith("tok0 ")  # the partial text stays
    expect(answer.get_by_role("alert")).to_contain_text("Error")
    page.get_by_role("button", name="Send").wait_for()


UNNAMED = """() => [...document.querySelectorAll('button, input, select, textarea')]
  .filter(e => e.offsetParent !== null)
  .filter(e => !(e.getAttribute('aria-label') || (e.labels && e.labels.length)
                 || (e.tagName === 'BUTTON' && e.textContent.trim())))
  .map(e => e.outerHTML.slice(0, 80))"""


def test_controls_have_accessible_names(ui: UiPage, fake: FakeUpstream) -> None:
    fake.configure(content="Hi", chunks=1, reasoning="hmm")
    page = ui.open()
    ui.send("Hello")
    ui.wait_answer()
    page.get_by_role("button", name="Chat settings").click()
    page.get_by_role("region", name="Chat settings").wait_for()
    assert page.evaluate(UNNAMED) == []
    # Landmarks a screen reader user navigates by.
    assert page.get_by_role("navigation", name="Chats").count() == 1
    assert page.get_by_role("main").count() == 1
    assert page.get_by_role("search").count() == 1
    assert page.get_by_role("region", name="Messages").count() == 1


def test_chat_settings_reach_the_model(ui: UiPage, fake: FakeUpstream) -> None:
    fake.configure(content="Arr", chunks=1)
    page = ui.open()
    page.get_by_role("button", name="Chat settings").click()
    settings = page.get_by_role("region", name="Chat settings")
    settings.get_by_label("System prompt").fill("Talk like a pirate.")
    settings.get_by_role("checkbox", name="Model default").uncheck()
    slider = settings.locator("input[type=range]")
    slider.focus()
    for _ in range(7):
        page.keyboard.press("ArrowLeft")  # 1.0 → 0.3
    settings.get_by_label("Max tokens").fill("256")
    ui.send("Hello")
    ui.wait_answer()
    body = fake.requests[-1]["body"]
    assert body["model"] == "fake-model"
    assert body["messages"][0] == {"role": "system", "content": "Talk like a pirate."}
    assert body["temperature"] == 0.3
    assert body["max_tokens"] == 256
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    # The chat keeps its settings; a new chat starts from the last ones used.
    ui.reload()
    page.get_by_role("button", name="Chat settings").click()
    expect(page.get_by_label("System prompt")).to_have_value("Talk like a pirate.")
