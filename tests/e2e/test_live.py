"""Two tabs on the server's /api: what one does shows in the other at once — an answer started
in one streams live in the other (over the page's WebSocket), renames and deletes follow."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import UiPage
from tests.fakes.upstream import FakeUpstream


@pytest.fixture
def tabs(new_page: Callable[..., UiPage], server_ui: UiPage) -> tuple[UiPage, UiPage]:
    return server_ui, new_page(local=False)


def test_a_second_tab_follows_the_first_live(
    tabs: tuple[UiPage, UiPage], fake: FakeUpstream
) -> None:
    a, b = tabs
    sockets: list[str] = []
    deltas: list[str] = []  # answer events that arrived over a WebSocket, in either tab

    def watch(ws: Any) -> None:
        sockets.append(ws.url)
        ws.on("framereceived", lambda f: deltas.append(f) if '"type":"delta"' in f else None)

    for tab in (a, b):
        tab.page.on("websocket", watch)
    page_a = a.open()
    fake.configure(content="The first answer.", chunks=2)
    a.send("A chat in two tabs")
    a.wait_answer()
    match = re.search(r"#/c/([^/?]+)", page_a.url)
    assert match, page_a.url
    cid = match.group(1)

    page_b = b.open(f"/#/c/{cid}", model=None)
    page_b.locator("article.msg-assistant .markdown", has_text="The first answer.").wait_for()

    # An answer started in tab A streams in tab B while it is being written.
    fake.configure(content=None, chunks=60, chunk_delay_ms=25)
    a.send("And a second question")
    page_b.locator("article.msg-user", has_text="And a second question").wait_for()
    streaming = page_b.locator("article.msg-assistant[data-status='streaming'] .markdown p")
    streaming.wait_for(timeout=5_000)
    assert "tok59" not in streaming.inner_text()  # seen mid-answer, not after the fact
    answer_b = page_b.locator("article.msg-assistant").last
    expect(answer_b).to_have_attribute("data-status", "done", timeout=15_000)
    text = answer_b.locator(".markdown").inner_text()
    assert text.count("tok0 ") == 1 and text.strip().endswith("tok59")
    a.wait_answer()

    # A rename in A shows in B's list; a delete in A takes the chat away in B.
    conv = page_a.locator(".conv", has_text="A chat in two tabs")
    conv.hover()
    conv.get_by_role("button", name="Rename").click()
    field = page_a.get_by_role("textbox", name="Rename")
    field.fill("Renamed in tab A")
    field.press("Enter")
    page_b.locator(".conv-title", has_text="Renamed in tab A").wait_for(timeout=5_000)

    renamed = page_a.locator(".conv", has_text="Renamed in tab A")
    renamed.hover()
    renamed.get_by_role("button", name="Delete").click()
    page_a.get_by_role("button", name="Delete").filter(has_text="Delete").last.click()
    page_b.locator(".conv", has_text="Renamed in tab A").wait_for(state="detached", timeout=5_000)
    expect(page_b.locator("article.msg-user", has_text="A chat in two tabs")).to_have_count(0)

    assert sockets and all(url.endswith("/api/ws") for url in sockets), sockets
    assert len(deltas) >= 60  # the answers streamed over the socket, not over SSE


def test_the_connection_drops_mid_answer_and_the_answer_continues(
    tabs: tuple[UiPage, UiPage], fake: FakeUpstream
) -> None:
    ui = tabs[0]
    connections: list[tuple[Any, Any]] = []

    def through(route: Any) -> None:  # every /api/ws connection passes here; we can cut it
        connections.append((route, route.connect_to_server()))

    ui.page.route_web_socket(re.compile(r"/api/ws$"), through)
    page = ui.open()
    fake.configure(content=None, chunks=100, chunk_delay_ms=30)  # about 3 s
    ui.send("Keep going while the line is down")
    page.locator("article.msg-assistant[data-status='streaming'] .markdown p").wait_for()
    assert len(connections) == 1
    page_side, server_side = connections[0]
    server_side.close()
    page_side.close()  # the page sees the socket drop mid-answer
    answer = page.locator("article.msg-assistant").last
    expect(answer).to_have_attribute("data-status", "done", timeout=20_000)
    text = answer.locator(".markdown").inner_text()
    for i in (0, 1, 50, 98):
        assert text.count(f"tok{i} ") == 1, text  # nothing lost, nothing twice
    assert text.strip().endswith("tok99")
    assert len(connections) >= 2  # it reconnected and resumed after the last event seen
