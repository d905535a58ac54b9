"""What the page says about its connection, and about a missing token."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import QUICK, ChatPage, sign_in

pytestmark = pytest.mark.browser


def test_the_page_says_it_is_connected(chat: ChatPage) -> None:
    expect(chat.connection).to_have_attribute("data-state", "connected", timeout=QUICK)
    expect(chat.connection).to_have_text("Connected")
    expect(chat.page.locator(".banner")).to_have_count(0)


def test_without_a_token_the_page_asks_for_one_in_place(
    page: Page, app_url: str, make_user
) -> None:
    sign_in(page, app_url, make_user(with_token=False))
    page.goto("/")
    expect(page.locator("#connection-state")).to_have_attribute(
        "data-state", "connected", timeout=QUICK
    )
    # The first-run card, not a banner pointing elsewhere (tests/browser/test_first_run.py).
    expect(page.locator(".onboarding")).to_be_visible()
    expect(page.locator(".banner")).to_have_count(0)
    page.locator(".topnav").get_by_role("link", name="Settings").click()
    expect(page.get_by_role("heading", name="Nobox token")).to_be_visible(timeout=QUICK)
    expect(page.get_by_role("link", name="← Back to the chat")).to_have_attribute("href", "/")
