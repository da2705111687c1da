"""Responsiveness, measured in the browser (PRODUCT issue 8's target): a conversation of 500
messages opens and scrolls without a frame longer than 100 ms, and typing stays responsive while
an answer streams. Long frames come from the page's own PerformanceObserver
('long-animation-frame', and 'longtask' as a cross-check); typing latency from the Event Timing
API (input → next paint) and from a keydown → next-frame probe. The numbers are printed and
written to test-artifacts/ui/perf.json, with whether they meet the target.

What the tests assert is a regression guard, not the target: a frame over GUARD_MS means the
page re-renders or re-parses far more than it should (a 500-message chat without block caching
or list virtualisation freezes for seconds), while the 100 ms target itself is a wall-clock
figure a busy 2-core CI machine can miss for reasons that are not the page's."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.e2e.conftest import ARTIFACTS, UiPage
from tests.fakes.upstream import FakeUpstream

LONG_FRAME_LIMIT_MS = 100  # the target, reported
GUARD_MS = 400  # asserted

OBSERVE = """
window.__loaf = []; window.__longtasks = []; window.__events = []; window.__keys = [];
try {
  new PerformanceObserver((l) => { for (const e of l.getEntries())
    window.__loaf.push({t: e.startTime, d: e.duration, blocking: e.blockingDuration}); })
    .observe({type: 'long-animation-frame', buffered: true});
} catch (e) {}
try {
  new PerformanceObserver((l) => { for (const e of l.getEntries())
    window.__longtasks.push({t: e.startTime, d: e.duration}); })
    .observe({type: 'longtask', buffered: true});
} catch (e) {}
try {
  new PerformanceObserver((l) => { for (const e of l.getEntries())
    window.__events.push({name: e.name, t: e.startTime, d: e.duration,
                          delay: e.processingStart - e.startTime}); })
    .observe({type: 'event', durationThreshold: 16, buffered: true});
} catch (e) {}
document.addEventListener('keydown', (e) => {
  const t0 = e.timeStamp;
  requestAnimationFrame(() => setTimeout(() => window.__keys.push(performance.now() - t0), 0));
}, true);
"""

# 500 messages: paragraphs, lists, code every 5th answer, a table every 7th, math every 9th.
SEED = """async (n) => {
  const db = await new Promise((ok, err) => {
    const r = indexedDB.open('chatgate'); r.onsuccess = () => ok(r.result); r.onerror = err; });
  const now = Date.now() - n * 1000;
  const conv = {id: 'perf-conv', title: 'Five hundred messages', pinned: false,
    createdAt: now, updatedAt: Date.now(),
    settings: {model: 'fake-model', systemPrompt: '', temperature: null, maxTokens: null},
    leafId: 'm' + (n - 1)};
  const tx = db.transaction(['conversations', 'messages'], 'readwrite');
  tx.objectStore('conversations').put(conv);
  const ms = tx.objectStore('messages');
  for (let i = 0; i < n; i++) {
    const user = i % 2 === 0;
    let content;
    if (user) {
      content = `Question ${i}: how does part ${i} of the system work, and what should I check?`;
    } else {
      content = `Answer ${i}. The **short** version: it depends on *configuration* and load.\\n\\n`
        + `- first, check the \\`settings\\` for item ${i}\\n- then measure twice\\n`
        + '- finally, write it down\\n\\n'
        + 'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor '
        + 'incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud.';
      if (i % 10 === 1) content += '\\n\\n```python\\ndef step(x: int) -> int:\\n    # ' + i
        + '\\n    return x * 2 + 1\\n\\nprint([step(i) for i in range(10)])\\n```';
      if (i % 14 === 3) content += '\\n\\n| key | value |\\n|---|---|\\n| a | 1 |\\n| b | 2 |';
      if (i % 18 === 5) content += '\\n\\nWith $x^2 + y^2 = r^2$ and '
        + '$$\\\\sum_{k=1}^{n} k = \\\\frac{n(n+1)}{2}$$';
    }
    ms.put({id: 'm' + i, conversationId: 'perf-conv', parentId: i ? 'm' + (i - 1) : null,
      role: user ? 'user' : 'assistant', content, status: 'done', createdAt: now + i * 1000,
      ...(user ? {} : {model: 'fake-model',
        usage: {promptTokens: 10 + i, completionTokens: 40, totalTokens: 50 + i}})});
  }
  await new Promise((ok, err) => { tx.oncomplete = ok; tx.onerror = err; });
  db.close();
}"""


def _frames(page: Any, since: float) -> dict[str, Any]:
    loaf = page.evaluate("t => window.__loaf.filter(e => e.t >= t)", since)
    tasks = page.evaluate("t => window.__longtasks.filter(e => e.t >= t)", since)
    return {
        "long_animation_frames": len(loaf),
        "max_frame_ms": round(max((e["d"] for e in loaf), default=0.0), 1),
        "max_longtask_ms": round(max((e["d"] for e in tasks), default=0.0), 1),
    }


def _save(name: str, numbers: dict[str, Any], worst_ms: float) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / "perf.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    numbers = {**numbers, "meets_100ms_target": worst_ms < LONG_FRAME_LIMIT_MS}
    data[name] = numbers
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"\n{name}: {json.dumps(numbers)}")


def test_500_messages_open_and_scroll_without_long_frames(
    new_page: Callable[..., UiPage],
) -> None:
    ui = new_page()
    ui.page.context.add_init_script(OBSERVE)
    page = ui.open(model=None)
    page.evaluate(SEED, 500)
    page.reload()
    page.wait_for_selector(".app[data-ready='true']")
    page.wait_for_timeout(500)  # start-up work is not what is measured

    t_open = page.evaluate("performance.now()")
    page.locator(".conv-open", has_text="Five hundred messages").click()
    page.locator("article[data-id='m499']").wait_for()
    open_ms = page.evaluate("t => performance.now() - t", t_open)
    page.wait_for_timeout(300)
    opened = _frames(page, t_open)

    # Scroll from the newest message to the very first, as a reader with a wheel would.
    t_scroll = page.evaluate("performance.now()")
    scroller = page.locator(".messages")
    scroller.hover()
    steps = 0
    while steps < 400:
        page.mouse.wheel(0, -1200)
        page.wait_for_timeout(30)
        steps += 1
        if steps % 10 == 0 and page.evaluate(
            "document.querySelector('.messages').scrollTop === 0"
            " && !document.querySelector('.older')"
        ):
            break
    page.locator("article[data-id='m0']").wait_for()
    assert page.evaluate("document.querySelector('.messages').scrollTop") == 0
    scroll_ms = page.evaluate("t => performance.now() - t", t_scroll)
    scrolled = _frames(page, t_scroll)
    rendered = page.locator("article.msg").count()
    numbers = {
        "messages": 500,
        "open_ms": round(open_ms, 1),
        "open": opened,
        "scroll_to_top_ms": round(scroll_ms, 1),
        "wheel_steps": steps,
        "scroll": scrolled,
        "rendered_after_scroll": rendered,
    }
    _save("500_messages", numbers, max(opened["max_frame_ms"], scrolled["max_frame_ms"]))
    assert rendered == 500
    assert opened["max_frame_ms"] < GUARD_MS, numbers
    assert scrolled["max_frame_ms"] < GUARD_MS, numbers


def test_typing_stays_responsive_while_streaming(ui: UiPage, fake: FakeUpstream) -> None:
    # A long Markdown answer (code, lists, math) streamed over about 6 seconds.
    part = (
        "Some **bold** text with `code` and a [link](https://example.com).\n\n"
        "```js\nconst x = [1, 2, 3].map((n) => n * 2);\nconsole.log(x);\n```\n\n"
        "- item one\n- item two with $a^2 + b^2$\n\n"
    )
    fake.configure(content=part * 40, chunks=600, chunk_delay_ms=10)
    ui.page.context.add_init_script(OBSERVE)
    page = ui.open()
    ui.send("Write a long answer")
    page.wait_for_selector("article.msg-assistant[data-status='streaming'] .markdown p")
    t0 = page.evaluate("performance.now()")
    box = page.locator(".composer textarea")
    box.click()
    typed = "typing while the answer streams in, every key should show at once"
    page.keyboard.type(typed, delay=40)
    still_streaming = ui.last_answer().get_attribute("data-status") == "streaming"
    assert box.input_value() == typed
    ui.wait_answer(timeout=30_000)
    keys = page.evaluate("window.__keys")
    events = page.evaluate(
        "t => window.__events.filter(e => e.t >= t && /key|input/.test(e.name))", t0
    )
    frames = _frames(page, t0)
    keys_sorted = sorted(keys)
    numbers = {
        "keys": len(keys),
        "streaming_throughout": still_streaming,
        "key_to_next_frame_ms": {
            "median": round(keys_sorted[len(keys_sorted) // 2], 1),
            "p95": round(keys_sorted[int(len(keys_sorted) * 0.95) - 1], 1),
            "max": round(keys_sorted[-1], 1),
        },
        "event_timing_over_16ms": len(events),
        "event_timing_max_ms": max((e["d"] for e in events), default=0),
        "while_streaming": frames,
    }
    _save(
        "typing_while_streaming",
        numbers,
        max(numbers["event_timing_max_ms"], frames["max_frame_ms"]),
    )
    assert still_streaming, "the answer finished before typing did: nothing was measured"
    assert len(keys) >= len(typed)
    assert numbers["event_timing_max_ms"] < GUARD_MS, numbers
    assert frames["max_frame_ms"] < GUARD_MS, numbers
