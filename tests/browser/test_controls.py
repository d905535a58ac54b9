"""Streaming controls and what assistive technology is told: Send becomes Stop, Esc stops, focus
stays in the composer, finished replies are announced, code blocks and task boxes are usable."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import QUICK, ChatPage

pytestmark = pytest.mark.browser


def test_send_becomes_stop_and_esc_stops_with_focus_back_in_the_composer(chat: ChatPage) -> None:
    page = chat.page
    send = page.locator("#send")
    chat.send("Tell me a long story", model="sim/long")
    reply = chat.last_reply()
    chat.wait_text_longer_than(reply, 40, timeout=QUICK)

    expect(chat.stop_button).to_be_visible()
    expect(send).to_be_hidden()
    # Enter while it streams sends nothing and says what to do.
    chat.composer.fill("and then?")
    chat.composer.press("Enter")
    expect(page.locator("#composer-status")).to_contain_text("press Stop (or Esc)")
    expect(chat.composer).to_have_value("and then?")

    page.keyboard.press("Escape")
    chat.wait_status(reply, "stopped", timeout=QUICK)
    expect(send).to_be_visible()
    expect(chat.stop_button).to_be_hidden()
    expect(chat.composer).to_be_focused()
    expect(page.locator("#announcer")).to_have_text("Reply stopped.")
    expect(page.locator(".banner")).to_have_count(0)


def test_a_finished_reply_is_announced_and_its_parts_are_labelled(chat: ChatPage) -> None:
    page = chat.page
    chat.send("- [x] done\n- [ ] not yet\n\n```python\nprint('a very long line')\n```", "sim/echo")
    reply = chat.last_reply()
    chat.wait_status(reply, "complete")

    expect(page.locator("#announcer")).to_have_text("Reply finished.")
    expect(page.locator("#messages")).to_have_attribute("role", "log")
    boxes = chat.body(reply).locator("input[type=checkbox]")
    expect(boxes.nth(0)).to_have_attribute("aria-label", "Done")
    expect(boxes.nth(1)).to_have_attribute("aria-label", "Not done")
    code = chat.body(reply).locator("pre")
    expect(code).to_have_attribute("tabindex", "0")
    expect(code).to_have_attribute("aria-label", "Code (python)")

    copy = chat.body(reply).locator("button.copy-code")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    copy.click()
    expect(copy).to_have_attribute("aria-label", "Copied")


def test_a_skip_link_comes_before_everything_and_leads_to_the_composer(chat: ChatPage) -> None:
    page = chat.page
    page.locator(".topbar .brand").focus()  # the first thing after the skip link
    page.keyboard.press("Shift+Tab")
    skip = page.locator("a.skip-link")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()
    page.keyboard.press("Enter")
    expect(chat.composer).to_be_focused()


def test_question_mark_lists_the_shortcuts_and_they_work(chat: ChatPage) -> None:
    page = chat.page
    page.locator(".topbar .brand").focus()  # not in a text field
    page.keyboard.press("?")
    dialog = page.locator("dialog#shortcuts")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("New chat")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(chat.composer).to_be_focused()

    # "?" typed in the message box is just text.
    chat.composer.type("why?")
    expect(dialog).to_be_hidden()
    page.locator(".topbar .brand").focus()
    page.keyboard.press("Shift+Escape")
    expect(chat.composer).to_be_focused()


def test_a_refused_file_banner_goes_once_a_message_is_sent(chat: ChatPage, tmp_path) -> None:
    page = chat.page
    chat.choose_model("sim/echo")
    binary = tmp_path / "program.exe"
    binary.write_bytes(bytes(range(256)))
    page.locator("#attach-input").set_input_files([binary])
    banner = page.locator(".banner")
    expect(banner).to_have_count(1)
    chat.composer.fill("just text then")
    chat.composer.press("Enter")
    chat.wait_status(chat.last_reply(), "complete")
    expect(banner).to_have_count(0)


def test_esc_that_closes_the_sidebar_or_shift_esc_does_not_stop_the_reply(chat: ChatPage) -> None:
    page = chat.page
    page.set_viewport_size({"width": 390, "height": 844})  # the sidebar is a drawer here
    chat.send("Tell me a long story", model="sim/long")
    reply = chat.last_reply()
    chat.wait_text_longer_than(reply, 40, timeout=QUICK)

    page.locator("#sidebar-toggle").click()
    expect(page.locator("body")).to_have_class(re.compile("sidebar-open"))
    page.keyboard.press("Escape")  # closes the drawer, and only that
    expect(page.locator("body")).not_to_have_class(re.compile("sidebar-open"))
    expect(page.locator("#sidebar-toggle")).to_be_focused()
    page.keyboard.press("Shift+Escape")  # goes to the message box, and only that
    expect(chat.composer).to_be_focused()
    page.wait_for_timeout(300)  # a stop would have ended the reply by now
    expect(reply).to_have_attribute("data-status", "streaming")

    page.keyboard.press("Escape")
    chat.wait_status(reply, "stopped", timeout=QUICK)


def test_code_in_a_finished_reply_is_highlighted_when_its_grammar_arrives(chat: ChatPage) -> None:
    chat.send("Show me everything", model="sim/markdown")
    chat.wait_status(chat.last_reply(), "complete")
    chat.reload()  # rendered from the page: plain at first, highlighted once python.js loads
    body = chat.body(chat.last_reply())
    expect(body.locator("pre code.language-python .hljs-keyword").first).to_have_text("def")
    expect(body.locator('[data-highlight="pending"]')).to_have_count(0)
