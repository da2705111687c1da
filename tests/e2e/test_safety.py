"""Model output can never run script: sanitised rendering and the CSP, checked in the browser."""

from __future__ import annotations

from tests.e2e.conftest import UiPage
from tests.fakes.upstream import FakeUpstream

PAYLOAD = (
    'Look: <img src=x onerror="window.__xss=1;alert(1)"> and [link](javascript:alert(2)) '
    "and <script>window.__xss=3;alert(3)</script>\n\n"
    '<a href="javascript:alert(4)">raw link</a> ![pic](javascript:alert(5)) '
    "[upper](JaVaScRiPt:alert(6)) <svg onload=alert(7)></svg> "
    "$\\href{javascript:alert(8)}{math link}$ <iframe src=javascript:alert(9)></iframe>"
)

NO_SCRIPT_LINKS = """() => [...document.querySelectorAll('[href], [src], [action], [formaction]')]
  .map(e => (e.getAttribute('href') || e.getAttribute('src') || e.getAttribute('action')
             || e.getAttribute('formaction') || ''))
  .map(v => v.replace(/[\\s\\u0000-\\u001f]/g, '').toLowerCase())
  .filter(v => v.startsWith('javascript:') || v.startsWith('data:text/html'))"""


def test_hostile_answer_runs_nothing(ui: UiPage, fake: FakeUpstream) -> None:
    # Streamed in small pieces, so tags are also split across chunks on the way.
    fake.configure(content=PAYLOAD, chunks=60, chunk_delay_ms=5)
    page = ui.open()
    ui.send("Show me something")
    answer = ui.wait_answer()
    body = answer.locator(".markdown")
    # The HTML is shown as the text it is.
    assert "<img src=x onerror=" in body.inner_text()
    page.wait_for_timeout(500)  # any onerror/onload would have fired by now
    assert page.evaluate("window.__xss") is None
    assert ui.dialogs == []
    assert page.locator("img[onerror], svg[onload], script:not([src]), iframe").count() == 0
    assert page.evaluate(NO_SCRIPT_LINKS) == []
    # Clicking what was a javascript: link does nothing either.
    answer.get_by_text("link", exact=True).first.click()
    answer.get_by_text("upper", exact=True).click()
    page.wait_for_timeout(300)
    assert ui.dialogs == []
    assert page.evaluate("window.__xss") is None
    # Reloaded from storage it is just as inert.
    ui.reload()
    page.wait_for_selector("article.msg-assistant[data-status='done']")
    page.wait_for_timeout(300)
    assert ui.dialogs == [] and page.evaluate("window.__xss") is None
    assert page.locator("img[onerror]").count() == 0


def test_csp_blocks_inline_script_even_if_injected(ui: UiPage) -> None:
    """The second line of defence: with the page's CSP, an inline script never runs."""
    page = ui.open(model=None)
    page.evaluate(
        """() => { const s = document.createElement('script');
                   s.textContent = 'window.__inline = 1'; document.body.appendChild(s); }"""
    )
    page.wait_for_timeout(200)
    assert page.evaluate("window.__inline") is None
    violations = ui.csp_violations()
    assert any(v.startswith("script-src") for v in violations), violations
    page.evaluate("window.__csp = []")  # expected here; the fixture checks the rest
