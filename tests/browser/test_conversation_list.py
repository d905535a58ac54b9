"""The conversation list in a real browser: rename in place, pin, archive, delete during a reply
with Undo, search, and the header menu of a chat that was just made."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Locator, expect

from tests.browser.conftest import QUICK, ChatPage

pytestmark = pytest.mark.browser


def new_chat(chat: ChatPage, text: str, model: str = "sim/echo") -> str:
    """Send `text` in a new chat; the new conversation's id once its reply is complete."""
    if "/c/" in chat.page.url:
        chat.open("/")
    chat.send(text, model=model)
    expect(chat.page).to_have_url(re.compile(r"/c/[\w-]+/$"), timeout=QUICK)
    chat.wait_status(chat.last_reply(), "complete")
    match = re.search(r"/c/([\w-]+)/$", chat.page.url)
    assert match
    return match.group(1)


def row(chat: ChatPage, conversation: str) -> Locator:
    return chat.page.locator(f'#conversation-list .conversation-row[data-id="{conversation}"]')


def group_of(chat: ChatPage, group: str) -> Locator:
    return chat.page.locator(f'#conversation-list .conversation-group[data-group="{group}"]')


def row_action(chat: ChatPage, conversation: str, action: str) -> None:
    the_row = row(chat, conversation)
    the_row.hover()
    the_row.locator(".row-actions-toggle").click()
    the_row.locator(f'.row-actions [data-action="{action}"]').click()


def test_rename_in_place_saves_on_enter_and_cancels_on_escape(chat: ChatPage) -> None:
    conversation = new_chat(chat, "First words of a chat")
    link = row(chat, conversation).locator("a.conversation-link")
    expect(link).to_have_text("First words of a chat")

    row_action(chat, conversation, "rename")
    field = row(chat, conversation).locator("input.rename-input")
    expect(field).to_be_focused()
    field.fill("Not this one")
    field.press("Escape")
    expect(link).to_have_text("First words of a chat")

    row_action(chat, conversation, "rename")
    field.fill("Trip to Lisbon")
    field.press("Enter")
    expect(link).to_have_text("Trip to Lisbon", timeout=QUICK)
    expect(chat.page.locator("#chat-title")).to_have_text("Trip to Lisbon")

    chat.reload()
    expect(row(chat, conversation).locator("a.conversation-link")).to_have_text("Trip to Lisbon")


def test_pin_moves_the_row_to_pinned_and_unpin_moves_it_back(chat: ChatPage) -> None:
    older = new_chat(chat, "The older chat")
    newer = new_chat(chat, "The newer chat")
    today = group_of(chat, "today")
    expect(today.locator(".conversation-row")).to_have_count(2)
    expect(today.locator(".conversation-row").first).to_have_attribute("data-id", newer)

    row_action(chat, older, "pin")

    expect(group_of(chat, "pinned").locator(".conversation-row")).to_have_count(1, timeout=QUICK)
    expect(group_of(chat, "pinned").locator(".conversation-row")).to_have_attribute(
        "data-id", older
    )
    expect(group_of(chat, "pinned").locator(".group-title")).to_have_text("Pinned")
    chat.reload()
    expect(group_of(chat, "pinned").locator(f'.conversation-row[data-id="{older}"]')).to_have_count(
        1
    )

    row_action(chat, older, "pin")
    expect(group_of(chat, "pinned")).to_have_count(0, timeout=QUICK)
    expect(today.locator(f'.conversation-row[data-id="{older}"]')).to_have_count(1)


def test_archive_hides_the_row_and_unarchive_brings_it_back(chat: ChatPage) -> None:
    kept = new_chat(chat, "A chat to keep")
    tucked = new_chat(chat, "A chat to archive")

    row_action(chat, tucked, "archive")

    toggle = chat.page.locator(".archived-toggle")
    expect(toggle).to_have_text("Archived (1)", timeout=QUICK)
    expect(row(chat, tucked)).to_be_hidden()
    expect(row(chat, kept)).to_be_visible()
    chat.reload()
    expect(row(chat, tucked)).to_be_hidden()

    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(
        group_of(chat, "archived").locator(f'.conversation-row[data-id="{tucked}"]')
    ).to_be_visible()
    row_action(chat, tucked, "archive")  # the item now reads "Unarchive"

    expect(toggle).to_have_count(0, timeout=QUICK)
    expect(
        group_of(chat, "today").locator(f'.conversation-row[data-id="{tucked}"]')
    ).to_be_visible()


def test_deleting_during_a_reply_stops_it_and_undo_brings_it_back(chat: ChatPage) -> None:
    chat.send("Tell me a long story", model="sim/long")
    expect(chat.page).to_have_url(re.compile(r"/c/[\w-]+/$"), timeout=QUICK)
    conversation = chat.page.url.rstrip("/").rsplit("/", 1)[-1]
    reply = chat.last_reply()
    chat.wait_text_longer_than(reply, 20)

    row_action(chat, conversation, "delete")

    expect(row(chat, conversation)).to_have_count(0, timeout=QUICK)
    toast = chat.page.locator("#undo-toast")
    expect(toast).to_contain_text("Deleted “Tell me a long story”.")
    chat.wait_status(reply, "stopped", timeout=QUICK)
    stopped_text = chat.text_of(reply)

    toast.get_by_role("button", name="Undo").click()

    expect(row(chat, conversation)).to_be_visible(timeout=QUICK)
    expect(toast).to_contain_text("Restored “Tell me a long story”.")
    chat.reload()
    expect(chat.page).to_have_url(re.compile(rf"/c/{conversation}/$"))
    reply = chat.last_reply()
    expect(reply).to_have_attribute("data-status", "stopped")
    assert chat.text_of(reply) == stopped_text


def test_search_finds_a_messages_text_and_opens_the_chat(chat: ChatPage) -> None:
    wanted = new_chat(chat, "Is the quokka a marsupial?")
    new_chat(chat, "Something else entirely")
    chat.open("/")
    box = chat.page.locator("#conversation-search")

    box.fill("quokka")

    result = chat.page.locator("#search-result-list a.search-result")
    expect(result).to_have_count(1, timeout=QUICK)
    expect(result.locator(".result-snippet mark")).to_have_text("quokka")
    expect(result.locator(".result-snippet")).to_contain_text("Is the quokka a marsupial?")
    expect(chat.page.locator("#conversation-nav")).to_be_hidden()
    box.press("ArrowDown")
    expect(result).to_be_focused()
    result.press("Enter")

    expect(chat.page).to_have_url(re.compile(rf"/c/{wanted}/$"), timeout=QUICK)
    chat.wait_connected()
    expect(chat.body(chat.by_role("user"))).to_have_text("Is the quokka a marsupial?")


def test_search_shows_markup_as_text(chat: ChatPage) -> None:
    new_chat(chat, "<img src=x onerror=alert(1)> tagged")
    chat.open("/")

    chat.page.locator("#conversation-search").fill("tagged")

    snippet = chat.page.locator("#search-result-list .result-snippet")
    expect(snippet).to_contain_text("<img src=x onerror=alert(1)> tagged", timeout=QUICK)
    expect(chat.page.locator("#search-result-list img")).to_have_count(0)


def test_the_header_menu_appears_with_the_first_send(chat: ChatPage) -> None:
    menu = chat.page.locator("#conversation-menu")
    expect(menu).to_be_hidden()

    conversation = new_chat(chat, "A brand new chat")

    expect(menu).to_be_visible()
    menu.locator("summary").click()
    title = menu.locator("#rename-title")
    expect(title).to_have_value("A brand new chat")
    title.fill("Named from the header")
    menu.get_by_role("button", name="Save").click()

    expect(chat.page.locator("#chat-title")).to_have_text("Named from the header", timeout=QUICK)
    expect(row(chat, conversation).locator("a.conversation-link")).to_have_text(
        "Named from the header"
    )
    chat.reload()
    expect(chat.page.locator("#chat-title")).to_have_text("Named from the header")
