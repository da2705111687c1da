"""Screenshots of the main screen (light, dark, mobile) in test-artifacts/ui/, and rich Markdown
rendered as a person sees it: code with a copy button, a table, math (KaTeX fonts from self)."""

from __future__ import annotations

from collections.abc import Callable

from tests.e2e.conftest import ARTIFACTS, UiPage
from tests.fakes.upstream import FakeUpstream

RICH = """Here is a **summary** with a table, some code and a little math.

| Model | Context | Price per 1M tokens |
|---|---:|---|
| deepseek-chat | 64k | $0.27 and $1.10 |
| local | 8k | free |

```python
def fib(n: int) -> int:
    \"\"\"The n-th Fibonacci number.\"\"\"
    return n if n < 2 else fib(n - 1) + fib(n - 2)
```

Euler's identity $e^{i\\pi} + 1 = 0$ links five constants, and

$$\\int_0^1 x^2\\,dx = \\frac{1}{3}$$

1. Streams render smoothly
2. Money like $5 and $10 stays text
"""


def _chat_with_rich_answer(ui: UiPage, fake: FakeUpstream) -> None:
    fake.configure(content=RICH, chunks=12, reasoning="Plan: table, code, math.")
    ui.open()
    ui.send("Show me what you can render")
    ui.wait_answer()


def test_rich_markdown_and_copy(ui: UiPage, fake: FakeUpstream) -> None:
    _chat_with_rich_answer(ui, fake)
    page = ui.page
    answer = ui.last_answer()
    assert answer.locator("table").count() == 1
    assert answer.locator("code.hljs.language-python .hljs-keyword").count() >= 2
    assert answer.locator(".katex").count() >= 2
    assert answer.locator(".katex-display").count() == 1
    assert "$5 and $10" in answer.inner_text()
    # KaTeX's fonts load from this server under the CSP.
    page.evaluate("document.fonts.ready")
    assert page.evaluate("document.fonts.check('16px KaTeX_Main')")
    assert page.evaluate(
        "[...document.fonts].some(f => f.family.includes('KaTeX') && f.status === 'loaded')"
    )
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    answer.locator(".code-copy").click()
    answer.locator(".code-copy", has_text="Copied").wait_for()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("def fib(n: int) -> int:")


def test_screenshots_light_dark_mobile(new_page: Callable[..., UiPage], fake: FakeUpstream) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    ui = new_page(local=False)  # what `chatgate serve` users get: history on the server
    _chat_with_rich_answer(ui, fake)
    page = ui.page
    page.locator(".prefs select").first.select_option("light")
    page.screenshot(path=str(ARTIFACTS / "main-light.png"))
    page.locator(".prefs select").first.select_option("dark")
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert bg == "rgb(33, 33, 33)", bg
    page.screenshot(path=str(ARTIFACTS / "main-dark.png"))

    mobile = new_page(viewport={"width": 390, "height": 844}, color_scheme="dark")
    _chat_with_rich_answer(mobile, fake)
    mp = mobile.page
    assert mp.evaluate("document.documentElement.dataset.theme") == "dark"  # system choice
    assert not mp.locator(".sidebar").is_visible() or mp.locator(".sidebar").bounding_box()["x"] < 0
    mp.screenshot(path=str(ARTIFACTS / "mobile-dark.png"))
    mp.get_by_role("button", name="Open chat list").click()
    mp.wait_for_timeout(300)
    box = mp.locator(".sidebar").bounding_box()
    assert box is not None and box["x"] >= 0
    mp.screenshot(path=str(ARTIFACTS / "mobile-drawer.png"))
    for name in ("main-light", "main-dark", "mobile-dark", "mobile-drawer"):
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 10_000
