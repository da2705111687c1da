"""The chat's tools in a real browser: the context gauge, the marker where earlier turns were
trimmed (with the summary readable and editable in place), presets, export and import.

These run against their own chatgate (a model `tiny` with a 1000-token window, no model-made
titles so the last upstream request is always the answer's), mostly in the server's /api mode,
which is what `chatgate serve` users get.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from chatgate.app import create_app
from tests.conftest import gateway_config
from tests.e2e.conftest import MODEL, UiPage
from tests.fakes.upstream import FakeUpstream
from tests.server import ServerThread

WINDOW = 1000
MODELS = {"tiny": {"provider": "fake", "model": "fake-model", "context_window": WINDOW}}


@pytest.fixture(scope="module")
def ui_url(fake_server: FakeUpstream) -> Iterator[str]:
    """This module's chatgate (overrides the shared one for `new_page`)."""
    config = gateway_config(fake_server.base_url, models=MODELS, chat={"model_titles": False})
    with ServerThread(create_app(config)) as url:
        yield url


def answer_request(fake: FakeUpstream) -> dict[str, Any]:
    """The body of the newest streamed (answer) request the fake upstream received."""
    bodies = [r["body"] for r in fake.requests if r["body"].get("stream")]
    assert bodies, "no answer reached the upstream"
    body: dict[str, Any] = bodies[-1]
    return body


# -- the context gauge ---------------------------------------------------------------------------
def test_gauge_shows_the_last_prompt_against_the_window(
    server_ui: UiPage, fake: FakeUpstream
) -> None:
    ui = server_ui
    page = ui.open()
    gauge = page.get_by_role("meter", name="Context window")
    expect(gauge).to_have_count(0)  # nothing measured yet
    ui.send("How full is the window?")
    ui.wait_answer()
    expect(gauge).to_be_visible()
    # The fake reports usage; the server's record gives the window (the default: 8192).
    prompt = int(gauge.get_attribute("aria-valuenow") or 0)
    sent = answer_request(fake)["messages"]
    assert prompt == max(1, sum(len(m["content"]) for m in sent) // 4)  # the fake's count
    assert gauge.get_attribute("aria-valuemax") == "8192"
    percent = round(prompt * 100 / 8192)
    expect(gauge).to_have_text(f"{percent}%")
    title = gauge.get_attribute("title") or ""
    assert f"last prompt {prompt} of 8,192 tokens ({percent}%)" in title, title
    assert "available to the prompt" in title  # the server's budget


def test_gauge_in_local_mode_uses_the_listed_window(ui: UiPage) -> None:
    page = ui.open()  # fake-model: /v1/models knows no window for it
    ui.send("first")
    ui.wait_answer()
    gauge = page.get_by_role("meter", name="Context window")
    expect(gauge).to_have_count(0)  # unknown window: hidden, not guessed
    page.locator(".model-picker select").select_option("tiny")
    ui.send("second")
    page.locator("article.msg-assistant").nth(1).and_(
        page.locator("[data-status='done']")
    ).wait_for()
    expect(gauge).to_be_visible()
    assert gauge.get_attribute("aria-valuemax") == str(WINDOW)
    expect(gauge).to_have_text(re.compile(r"^\d+%$"))


# -- trimmed context: the marker and the summary -------------------------------------------------
def long_conversation(url: str, n: int = 60) -> str:
    messages = [
        {"role": ("user", "assistant")[i % 2], "content": f"turn {i} " + "lorem ipsum " * 8}
        for i in range(n)
    ]
    body = {"title": "Long", "model": "tiny", "messages": messages}
    r = httpx.post(url + "/api/conversations/import", json=body, timeout=10)
    assert r.status_code == 201, r.text
    cid: str = r.json()["id"]
    return cid


def test_trimmed_conversation_shows_the_marker_and_the_editable_summary(
    server_ui: UiPage, fake: FakeUpstream, ui_url: str
) -> None:
    ui = server_ui
    cid = long_conversation(ui_url)
    page = ui.open(f"/#/c/{cid}", model=None)
    page.locator("article.msg-user", has_text="turn 58").wait_for()
    expect(page.get_by_test_id("context-marker")).to_have_count(0)
    fake.configure(content="The short answer.", chunks=3)
    ui.send("and now?")
    ui.wait_answer()

    marker = page.get_by_test_id("context-marker")
    expect(marker).to_be_visible()
    expect(marker).to_contain_text("summarised")
    view = httpx.get(f"{ui_url}/api/conversations/{cid}", timeout=10).json()
    answer = view["messages"][-1]
    context = answer["context"]  # counts: the ids come from the context endpoint
    assert context["summarised_count"] and context["summary_id"]
    # At the right place: right above the summary, which stands right above the first turn the
    # model saw in full (not only a note on the answer).
    order = page.evaluate(
        """() => {
            const m = document.querySelector('[data-testid="context-marker"]');
            const s = m.nextElementSibling;
            return [s.dataset.role, s.dataset.id, s.nextElementSibling.dataset.id];
        }"""
    )
    assert order == ["summary", context["summary_id"], context["first_sent_id"]]
    full = httpx.get(f"{ui_url}/api/conversations/{cid}/messages/{answer['id']}/context").json()
    assert full["sent"][0] == context["first_sent_id"]
    assert len(full["summarised"]) == context["summarised_count"]
    expect(ui.last_answer().locator(".context-note")).to_contain_text("summarised")

    # The summary opens, and is edited in place.
    summary = page.locator("aside.summary")
    toggle = summary.get_by_role("button", name="Summary of earlier messages")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.click()
    summary_row = next(m for m in view["messages"] if m["role"] == "summary")
    expect(summary.locator(".summary-text")).to_have_text(summary_row["content"])
    summary.get_by_role("button", name="Edit summary").click()
    box = summary.get_by_role("textbox", name="Summary text")
    box.fill("The user and the assistant counted turns; EDITED.")
    summary.get_by_role("button", name="Save").click()
    expect(summary.locator(".summary-text")).to_have_text(
        "The user and the assistant counted turns; EDITED."
    )
    stored = httpx.get(f"{ui_url}/api/conversations/{cid}", timeout=10).json()
    edited = next(m for m in stored["messages"] if m["role"] == "summary")
    assert edited["content"] == "The user and the assistant counted turns; EDITED."

    # The gauge measures this chat against tiny's window.
    gauge = page.get_by_role("meter", name="Context window")
    assert gauge.get_attribute("aria-valuemax") == str(WINDOW)


# -- presets -------------------------------------------------------------------------------------
def open_settings(page: Any) -> Any:
    page.get_by_role("button", name="Chat settings").click()
    return page.get_by_role("region", name="Chat settings")


def pick_preset(panel: Any, name: str) -> None:
    panel.get_by_role("combobox", name="Preset").select_option(label=name)
    panel.get_by_role("button", name="Apply").click()


def test_presets_save_apply_and_persist(server_ui: UiPage, fake: FakeUpstream) -> None:
    ui = server_ui
    page = ui.open()
    panel = open_settings(page)
    temperature = panel.locator("output")
    # Set temperature 0.7 and a max-token limit, then save that as a preset.
    panel.get_by_role("checkbox", name="Model default").uncheck()
    slider = panel.get_by_role("slider")
    slider.focus()
    for _ in range(3):
        slider.press("ArrowLeft")
    expect(temperature).to_have_text("0.7")
    panel.get_by_role("spinbutton", name="Max tokens").fill("300")
    panel.get_by_role("button", name="Save current settings as a preset…").click()
    panel.get_by_role("textbox", name="Preset name").fill("Careful")
    panel.get_by_role("button", name="Save", exact=True).click()
    expect(panel.locator(".presets small[role=status]")).to_have_text("Preset “Careful” saved")

    pick_preset(panel, "Creative")
    expect(temperature).to_have_text("1.0")
    # Pick it for a new chat: the request upstream carries its settings.
    page.get_by_role("button", name="New chat").first.click()
    pick_preset(panel, "Careful")
    expect(temperature).to_have_text("0.7")
    ui.send("With my preset")
    ui.wait_answer()
    body = answer_request(fake)
    assert body["temperature"] == 0.7 and body["max_tokens"] == 300

    # A built-in on the chat on screen.
    pick_preset(panel, "Precise")
    expect(temperature).to_have_text("0.2")
    page.locator(".app[data-saved='true']").wait_for()
    ui.send("Precisely")
    page.locator("article.msg-assistant").nth(1).and_(
        page.locator("[data-status='done']")
    ).wait_for()
    assert answer_request(fake)["temperature"] == 0.2

    # User presets persist (localStorage); they can be renamed and deleted, built-ins cannot.
    ui.reload()
    panel = open_settings(page)
    select = panel.get_by_role("combobox", name="Preset")
    select.select_option(label="Careful")
    panel.get_by_role("button", name="Rename preset").click()
    panel.get_by_role("textbox", name="Preset name").fill("Careful too")
    panel.get_by_role("button", name="Save", exact=True).click()
    expect(select.locator("option", has_text="Careful too")).to_have_count(1)
    panel.get_by_role("button", name="Delete preset").click()
    panel.get_by_role("button", name="Delete", exact=True).click()
    expect(select.locator("option", has_text="Careful")).to_have_count(0)
    select.select_option(label="Default")
    expect(panel.get_by_role("button", name="Delete preset")).to_be_disabled()
    stored = page.evaluate("localStorage.getItem('chatgate.presets')")
    assert json.loads(stored) == []


# -- export and import ---------------------------------------------------------------------------
def export(page: Any, label: str, where: Path) -> Path:
    page.get_by_role("button", name="Export or import").click()
    with page.expect_download() as info:
        page.get_by_role("button", name=label).click()
    download = info.value
    path = where / download.suggested_filename
    download.save_as(path)
    return path


def import_file(page: Any, path: Path) -> None:
    page.get_by_role("button", name="Export or import").click()
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="Import a JSON export…").click()
    chooser.value.set_files(str(path))


@pytest.mark.parametrize("mode", ["server", "local"])
def test_export_then_import_makes_the_same_chat(
    mode: str, new_page: Callable[..., UiPage], fake: FakeUpstream, tmp_path: Path
) -> None:
    ui = new_page(local=mode == "local")
    page = ui.open(model=MODEL)
    fake.configure(content="Exported **answer**.", chunks=3)
    ui.send("Please export me")
    ui.wait_answer()
    page.locator(".app[data-saved='true']").wait_for()
    first_url = page.url
    chats = page.locator(".sidebar .conv")
    before = chats.count()  # server mode: this module's other chats are listed too

    path = export(page, "Export as JSON", tmp_path)
    assert path.name.endswith(".json")
    data = json.loads(path.read_text())
    assert data["format"] == "chatgate.conversation" and data["version"] == 1
    assert [(m["role"], m["content"]) for m in data["messages"]] == [
        ("user", "Please export me"),
        ("assistant", "Exported **answer**."),
    ]
    assert data["conversation"]["model"] == MODEL
    md = export(page, "Export as Markdown", tmp_path).read_text()
    assert "## User\n\nPlease export me" in md and "## Assistant\n\nExported **answer**." in md

    import_file(page, path)
    page.wait_for_function("u => location.href !== u", arg=first_url)
    expect(chats).to_have_count(before + 1)
    expect(page.locator("article.msg-user .user-text")).to_have_text(["Please export me"])
    expect(page.locator("article.msg-assistant .markdown")).to_have_text(["Exported answer."])
    expect(page.locator("article.msg-assistant strong")).to_have_text("answer")

    # A file that is not an export: the reason is shown in the page.
    bad = tmp_path / "notes.json"
    bad.write_text("this is not JSON")
    import_file(page, bad)
    expect(page.get_by_role("alert")).to_contain_text("“notes.json” is not a JSON file")
    page.get_by_role("alert").get_by_role("button").click()
    bad.write_text(json.dumps({"messages": [{"role": "robot", "content": "beep"}]}))
    import_file(page, bad)
    expect(page.get_by_role("alert")).to_contain_text("Cannot import: messages[0]")
    expect(chats).to_have_count(before + 1)
