"""Hostile model output: nothing runs, nothing is fetched from elsewhere."""

from __future__ import annotations

import pytest
from playwright.sync_api import Dialog, expect

from tests.browser.conftest import ChatPage

pytestmark = pytest.mark.browser

HOSTILE = (
    '<img src=x onerror="window.__pwned=1"> <script>window.__pwned=2</script> '
    "[link](javascript:alert(1)) ![remote](https://example.com/x.png)"
)

# Records every element that is ever added to the messages, in case one is there only while
# the reply streams.
WATCH_ADDED = """() => {
  window.__added = [];
  new MutationObserver((records) => {
    for (const record of records) {
      for (const node of record.addedNodes) {
        if (node.nodeType !== Node.ELEMENT_NODE) continue;
        for (const el of [node, ...node.querySelectorAll("*")]) {
          window.__added.push({ tag: el.tagName.toLowerCase(), src: el.getAttribute("src"),
                                href: el.getAttribute("href"),
                                on: el.getAttributeNames().filter((a) => a.startsWith("on")) });
        }
      }
    }
  }).observe(document.querySelector("#messages"), { childList: true, subtree: true });
}"""


def test_hostile_markdown_is_inert(chat: ChatPage, app_url: str) -> None:
    page = chat.page
    elsewhere: list[str] = []
    page.on(
        "request",
        lambda request: (
            elsewhere.append(request.url)
            if not request.url.startswith((app_url, "data:"))
            else None
        ),
    )
    dialogs: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    page.evaluate(WATCH_ADDED)

    chat.send(HOSTILE, model="sim/echo")
    reply = chat.last_reply()
    chat.wait_status(reply, "complete")

    # The user's own message is shown as the text it is.
    assert chat.text_of(chat.by_role("user")) == HOSTILE
    body = chat.body(reply)
    expect(body).to_contain_text("link")
    assert page.evaluate("typeof window.__pwned") == "undefined"
    expect(body.locator("script")).to_have_count(0)
    images = body.locator("img")
    for i in range(images.count()):
        src = images.nth(i).get_attribute("src") or ""
        assert src.startswith("data:"), f"an image with a remote source: {src}"
    for i in range(body.locator("a").count()):
        href = (body.locator("a").nth(i).get_attribute("href") or "").strip().lower()
        assert not href.startswith("javascript:"), href
    hrefs = page.eval_on_selector_all("a[href]", "links => links.map((a) => a.href)")
    assert not [h for h in hrefs if h.strip().lower().startswith("javascript:")], hrefs

    added = page.evaluate("window.__added")
    assert added, "the observer saw no message being added"
    for element in added:
        assert element["tag"] != "script", element
        assert not element["on"], element
        assert element["tag"] != "img" or (element["src"] or "").startswith("data:"), element
        assert not (element["href"] or "").strip().lower().startswith("javascript:"), element
    assert not elsewhere, f"the page fetched from elsewhere: {elsewhere}"
    assert not dialogs, dialogs
