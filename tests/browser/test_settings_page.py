"""Signing in through the form and saving a Nobox token in Settings."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import QUICK, ChatPage

pytestmark = pytest.mark.browser


def test_sign_in_and_save_a_token_that_is_never_shown_again(page: Page, make_user) -> None:
    user = make_user(with_token=False)
    token = "sk-browser-SECRET-7f3Kq9zW"
    rejected = "invalid-token-Xb81Lm2P"

    # Signing in through the login form lands on the chat.
    page.goto("/")
    expect(page).to_have_url("/accounts/login/?next=/", timeout=QUICK)
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(user.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#composer")).to_be_visible(timeout=QUICK)
    expect(page.locator(".topnav")).to_contain_text(user.username)

    # Settings, from the top navigation.
    page.locator(".topnav").get_by_role("link", name="Settings").click()
    expect(page.get_by_role("heading", name="Nobox token")).to_be_visible(timeout=QUICK)
    expect(page.locator(".token-status")).to_contain_text("No token saved yet")

    page.get_by_label("Nobox token").fill(token)
    page.get_by_role("button", name="Save token").click()
    expect(page.locator(".flash")).to_contain_text("saved", timeout=QUICK)
    expect(page.locator(".token-status")).to_contain_text("…" + token[-4:])
    html = page.content()
    assert token not in html
    assert token[:-4] not in html
    expect(page.get_by_label("Nobox token")).to_have_value("")

    # A token Nobox rejects: a clear error, and the saved token stays as it was.
    page.get_by_label("Nobox token").fill(rejected)
    page.get_by_role("button", name="Replace token").click()
    expect(page.get_by_text("Nobox rejected this token")).to_be_visible(timeout=QUICK)
    expect(page.get_by_text("nothing was saved")).to_be_visible()
    expect(page.locator(".token-status")).to_contain_text("…" + token[-4:])
    expect(page.locator(".token-status")).not_to_contain_text(rejected[-4:])
    html = page.content()
    assert rejected not in html
    assert token not in html

    # Still saved after a fresh load, and the chat can now list the user's models.
    page.goto("/settings/")
    expect(page.locator(".token-status")).to_contain_text("…" + token[-4:], timeout=QUICK)
    chat = ChatPage(page)
    chat.open("/")
    chat.choose_model("sim/echo")
