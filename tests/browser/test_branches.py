"""Versions in the browser: a pasted image sent with math, the message edited and flipped
between its versions, a failed reply retried in place (one call for a double click)."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ChatPage
from tests.browser.test_attachments import PASTE_IMAGE, PIXEL

pytestmark = pytest.mark.browser


# Records every frame the page sends from now on (the socket is already open).
SENT_FRAMES = """() => {
  const send = WebSocket.prototype.send;
  window.__sent = [];
  WebSocket.prototype.send = function (data) {
    window.__sent.push(data);
    return send.call(this, data);
  };
}"""


def upstream_calls(sim_url: str) -> int:
    stats = httpx.get(sim_url.removesuffix("/_f_") + "/_sim/stats").json()
    return int(stats["chat_completions"])


def test_edit_a_message_flip_between_versions_and_retry_a_failed_reply(
    chat: ChatPage, sim_url: str
) -> None:
    page = chat.page
    chat.choose_model("sim/echo")
    page.evaluate(PASTE_IMAGE, PIXEL)
    chat.composer.fill("Square $x^2$ please")
    chat.composer.press("Enter")
    question, reply = chat.by_role("user").last, chat.last_reply()
    chat.wait_status(reply, "complete")
    expect(chat.body(reply).locator("math").first).to_be_visible()  # KaTeX rendered the echo
    first_reply = reply.get_attribute("data-id")

    # Edit: the message becomes a field; Enter sends the new version, which keeps the image.
    question.get_by_role("button", name="Edit this message").click()
    field = question.get_by_role("textbox", name="Edit your message")
    expect(field).to_be_focused()
    field.fill("Cube $x^3$ please")
    field.press("Enter")
    expect(chat.by_role("user")).to_have_count(1)
    question = chat.by_role("user").last
    expect(chat.body(question)).to_have_text("Cube $x^3$ please")
    expect(question.locator(".version-count")).to_have_text("2 / 2")
    expect(question.locator("img.attachment-image")).to_have_attribute(
        "src", re.compile(r"^/files/")
    )
    chat.wait_status(chat.last_reply(), "complete")
    expect(chat.last_reply()).not_to_have_attribute("data-id", first_reply or "")
    expect(chat.body(chat.last_reply())).to_contain_text("Received 1 image(s)")

    # Flip back: the first version and its reply return, and forward again.
    question.get_by_role("button", name="Previous version").click()
    expect(chat.body(chat.by_role("user").last)).to_have_text("Square $x^2$ please")
    expect(chat.by_role("user").last.locator(".version-count")).to_have_text("1 / 2")
    expect(chat.last_reply()).to_have_attribute("data-id", first_reply or "")
    chat.by_role("user").last.get_by_role("button", name="Next version").click()
    expect(chat.body(chat.by_role("user").last)).to_have_text("Cube $x^3$ please")

    # A failed reply gets Retry; a double click makes one call, and the retry is version 2.
    chat.send("this one fails", model="sim/server-error")
    failed = chat.last_reply()
    chat.wait_status(failed, "error")
    failed_id = failed.get_attribute("data-id")
    chat.choose_model("sim/echo")
    calls = upstream_calls(sim_url)
    page.evaluate(SENT_FRAMES)
    failed.get_by_role("button", name="Retry this reply").dblclick()
    retried = chat.last_reply()
    chat.wait_status(retried, "complete")
    expect(chat.body(retried)).to_contain_text("this one fails")
    expect(retried.locator(".version-count")).to_have_text("2 / 2")
    # The retry took the failed reply's place (its version 1, one click away).
    expect(chat.by_role("assistant")).to_have_count(2)
    expect(page.locator(f'#messages .message[data-id="{failed_id}"]')).to_have_count(0)
    assert upstream_calls(sim_url) == calls + 1
    # The page sent one regenerate: the second click waited for the first's ack (the server
    # would have refused a second one as busy, which the call count alone cannot tell).
    sent = page.evaluate("() => window.__sent.map((text) => JSON.parse(text).type)")
    assert sent.count("regenerate") == 1, sent
    expect(page.locator(".banner")).to_have_count(0)

    # What the page shows is what the server keeps: a reload shows the same branch.
    chat.reload()
    expect(chat.body(chat.by_role("user").first)).to_have_text("Cube $x^3$ please")
    expect(chat.last_reply().locator(".version-count")).to_have_text("2 / 2")
