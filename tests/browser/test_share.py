"""Shared links in a real browser: made from the chat page's menu, hostile model output inert on
the shared page, incomplete replies marked, and a live link streaming a reply to a viewer until
the owner revokes it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, Dialog, Page, expect

from tests.browser.conftest import QUICK, STREAM, ChatPage, User, sign_in
from tests.browser.test_safety import HOSTILE

pytestmark = pytest.mark.browser


def create_link(chat: ChatPage, kind: str, via: str = "menu") -> str:
    """Make a link to the open conversation from its header menu, or from its row in the
    sidebar (`via="row"`); returns the URL the page shows."""
    page = chat.page
    if via == "menu":
        chat.reload()  # the menu belongs to a saved conversation's page
        page.locator(".conversation-menu summary").click()
        page.get_by_role("link", name="Share…").click()
    else:
        row = page.locator("#conversation-list li").first  # made by the page for a new chat
        row.hover()
        row.locator(".row-share").click()
    page.locator(f'input[name="kind"][value="{kind}"]').check()
    page.get_by_role("button", name="Create link").click()
    url = page.locator("#share-url").input_value(timeout=QUICK)
    assert "/s/" in url
    return url


@pytest.fixture
def viewer(browser: Browser, app_url: str, make_user: Callable[..., User]) -> Iterator[Page]:
    """Another member's browser (a context of its own), signed in."""
    context = browser.new_context(base_url=app_url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    uncaught: list[str] = []
    page.on("pageerror", lambda error: uncaught.append(str(error)))
    sign_in(page, app_url, make_user())
    yield page
    context.close()
    assert not uncaught, uncaught


def test_hostile_output_is_inert_on_the_shared_page(chat: ChatPage, viewer: Page, app_url: str):
    chat.send(HOSTILE, model="sim/echo")
    chat.wait_status(chat.last_reply(), "complete")
    url = create_link(chat, "snapshot")

    elsewhere: list[str] = []
    viewer.on(
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

    viewer.on("dialog", dismiss)
    viewer.goto(url)
    shared = ChatPage(viewer)
    reply = shared.last_reply()
    expect(reply).to_have_attribute("data-status", "complete", timeout=QUICK)
    assert shared.text_of(shared.by_role("user")) == HOSTILE  # the user's text, as text
    body = shared.body(reply)
    expect(body).to_contain_text("link")  # rendered markdown, through the chat's render.js
    assert viewer.evaluate("typeof window.__pwned") == "undefined"
    expect(viewer.locator("#messages script")).to_have_count(0)
    for src in viewer.eval_on_selector_all("#messages img", "els => els.map((e) => e.src)"):
        assert src.startswith("data:"), f"an image with a remote source: {src}"
    hrefs = viewer.eval_on_selector_all("a[href]", "links => links.map((a) => a.href)")
    assert not [h for h in hrefs if h.strip().lower().startswith("javascript:")], hrefs
    handlers = viewer.eval_on_selector_all(
        "#messages *",
        "els => els.flatMap((e) => e.getAttributeNames()).filter((a) => a.startsWith('on'))",
    )
    assert not handlers, handlers
    assert not elsewhere, f"the page fetched from elsewhere: {elsewhere}"
    assert not dialogs, dialogs
    expect(viewer.locator("#composer")).to_have_count(0)  # read-only: nothing to write with


def test_incomplete_replies_are_marked(chat: ChatPage, viewer: Page):
    chat.send("This will break", model="sim/error-mid-stream")
    chat.wait_status(chat.last_reply(), "error")
    url = create_link(chat, "snapshot")
    viewer.goto(url)
    reply = ChatPage(viewer).last_reply()
    expect(reply).to_have_attribute("data-status", "error", timeout=QUICK)
    expect(reply.locator(".message-incomplete")).to_have_text("Incomplete reply")
    expect(reply.locator(".message-error")).to_contain_text("failed before it was finished")


def test_a_viewers_copy_button_says_copied_then_is_ready_again(chat: ChatPage, viewer: Page):
    chat.send("Copy me", model="sim/echo")
    chat.wait_status(chat.last_reply(), "complete")
    url = create_link(chat, "snapshot")
    viewer.context.grant_permissions(["clipboard-read", "clipboard-write"])
    viewer.goto(url)
    reply = ChatPage(viewer).last_reply()
    copy = reply.locator("button.copy-message")
    name = copy.get_attribute("aria-label", timeout=QUICK)

    copy.click()

    expect(copy).to_have_attribute("aria-label", "Copied")
    copied = viewer.evaluate("navigator.clipboard.readText()")
    assert copied == ChatPage(viewer).text_of(reply)
    # It goes back (it stayed "Copied" for good on this page), ready for another copy.
    expect(copy).to_have_attribute("aria-label", name or "", timeout=QUICK)
    expect(copy).to_be_enabled()


def test_a_live_link_streams_a_reply_until_it_is_revoked(chat: ChatPage, viewer: Page):
    chat.send("First", model="sim/echo")
    chat.wait_status(chat.last_reply(), "complete")
    conversation_url = chat.page.url
    url = create_link(chat, "live", via="row")

    viewer.goto(url)
    shared = ChatPage(viewer)
    expect(shared.connection).to_have_attribute("data-state", "connected", timeout=QUICK)
    expect(shared.by_role("assistant")).to_have_count(1)
    viewer.evaluate(
        """() => {
      window.__streamed = 0;
      new MutationObserver(() => {
        const m = document.querySelector('.message-assistant[data-status="streaming"]');
        if (m && m.querySelector(".message-body").textContent) window.__streamed += 1;
      }).observe(document.querySelector("#messages"),
                 { childList: true, subtree: true, characterData: true, attributes: true });
    }"""
    )

    chat.open(conversation_url)
    chat.send("Now the long one", model="sim/markdown")
    expect(shared.by_role("assistant")).to_have_count(2, timeout=QUICK)
    reply = shared.last_reply()
    expect(reply).to_have_attribute("data-status", "complete", timeout=STREAM)
    chat.wait_status(chat.last_reply(), "complete")
    assert viewer.evaluate("window.__streamed") > 1, "the viewer saw the reply being written"
    assert shared.text_of(reply) == chat.text_of(chat.last_reply())
    expect(viewer.locator("#continue")).to_be_visible()

    # The owner revokes it: the open viewer is told at once, and the address is a 404.
    chat.page.goto("/shares/")
    chat.page.get_by_role("button", name="Revoke").click()
    expect(chat.page.locator(".share-state-revoked")).to_have_count(1, timeout=QUICK)
    expect(viewer.locator(".banner")).to_contain_text("revoked", timeout=QUICK)
    expect(shared.connection).to_have_text("Closed")
    assert viewer.goto(url).status == 404  # type: ignore[union-attr]


def test_a_live_viewer_follows_the_owners_versions_without_buttons_of_its_own(
    chat: ChatPage, viewer: Page
):
    chat.send("Pick a number", model="sim/echo")
    first = chat.last_reply()
    chat.wait_status(first, "complete")
    first_id = first.get_attribute("data-id")
    conversation_url = chat.page.url
    url = create_link(chat, "live", via="row")
    viewer.goto(url)
    shared = ChatPage(viewer)
    expect(shared.connection).to_have_attribute("data-state", "connected", timeout=QUICK)
    expect(shared.last_reply()).to_have_attribute("data-id", first_id or "")
    # Read-only: no edit, regenerate or version buttons for a viewer.
    expect(viewer.locator("#messages [data-action]")).to_have_count(0)

    chat.open(conversation_url)
    chat.last_reply().get_by_role("button", name="Regenerate this reply").click()
    chat.wait_status(chat.last_reply(), "complete")
    expect(chat.last_reply()).not_to_have_attribute("data-id", first_id or "")
    # The viewer's page drops the reply the owner no longer shows and shows the new one.
    expect(shared.by_role("assistant")).to_have_count(1, timeout=QUICK)
    expect(shared.last_reply()).to_have_attribute(
        "data-id", chat.last_reply().get_attribute("data-id") or "", timeout=QUICK
    )
    expect(viewer.locator("#messages [data-action]")).to_have_count(0)
