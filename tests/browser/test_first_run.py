"""A new person with no token: from the first page to a streaming reply in one flow."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ChatPage, User, sign_in

pytestmark = pytest.mark.browser


def test_no_token_to_chatting_in_one_flow(
    page: Page, app_url: str, make_user: Callable[..., User]
) -> None:
    sign_in(page, app_url, make_user(with_token=False))
    page.goto("/")
    card = page.locator(".onboarding")
    expect(card).to_be_visible()
    expect(card).to_contain_text("Nobox dashboard")
    # One message about the missing token: the card, not a banner as well.
    expect(page.locator(".banner")).to_have_count(0)

    card.get_by_label("Nobox token").fill("sk-first-run-token-0001")
    card.get_by_role("button", name="Save and start chatting").click()

    chat = ChatPage(page)
    expect(page).to_have_url(f"{app_url}/")
    expect(page.locator(".onboarding")).to_have_count(0)
    chat.wait_connected()
    chat.expect_some_model()
    chat.composer.fill("Hello!")
    chat.composer.press("Enter")
    chat.wait_status(chat.last_reply(), "complete")
    expect(page.locator("#settings-toggle")).to_have_text("Chat options")
