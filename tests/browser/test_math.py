"""Math in replies: TeX becomes MathML drawn by the browser, and markdown leaves it alone."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ChatPage

pytestmark = pytest.mark.browser

MATH = (
    "Euler: $e^{i\\pi} + 1 = 0$ and \\(a_1 + b_1\\).\n\n"
    "$$\n\\frac{\\partial f}{\\partial x} = \\sum_{k=1}^{n} x_k^2\n$$\n\n"
    "Prices: $5 and $10. Code: `$HOME` stays code.\n\n"
    "Bad: $\\frac{1}{$ and $\\href{javascript:alert(1)}{click}$"
)


def test_tex_renders_as_mathml_and_the_rest_stays_markdown(chat: ChatPage) -> None:
    chat.send(MATH, model="sim/echo")
    reply = chat.last_reply()
    chat.wait_status(reply, "complete")
    body = chat.body(reply)

    # KaTeX loads on first use; until then the TeX shows as code, then it is drawn again.
    expect(body.locator("math")).to_have_count(4)
    expect(body.locator('math[display="block"] mfrac')).to_have_count(1)
    # Backslashes and underscores reached TeX instead of markdown: subscripts, a sum, pi.
    expect(body.locator("math msub").first).to_be_visible()
    expect(body.locator("math munderover, math msubsup").first).to_be_attached()
    assert "π" in (body.locator("math").first.text_content() or "")
    # The TeX source kept in MathML's <annotation> is not printed after each formula.
    expect(body.locator("annotation")).to_have_count(0)
    assert "\\frac" not in body.inner_text().split("Prices")[0]
    # Money is not math, and code keeps its dollars.
    expect(body).to_contain_text("Prices: $5 and $10.")
    expect(body.locator("code", has_text="$HOME")).to_have_count(1)
    # Broken TeX is shown as its source, and \href makes no link.
    expect(body).to_contain_text("Bad: \\frac{1}{")
    expect(body.locator("a")).to_have_count(0)
    expect(body.locator('[data-math="pending"]')).to_have_count(0)
