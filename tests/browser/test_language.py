"""The browser's language picks the interface's (issue 12): a German Chromium (locale de-DE, so
Accept-Language de-DE) gets the sign-in and chat pages in German, server-rendered text and the
texts the page's modules make alike; an English one keeps English."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import QUICK, STREAM, ChatPage, User, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def german(browser: Browser, app_url: str) -> Iterator[BrowserContext]:
    context = browser.new_context(
        base_url=app_url, viewport={"width": 1280, "height": 900}, locale="de-DE"
    )
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def german_page(german: BrowserContext) -> Page:
    return german.new_page()


def test_a_german_browser_gets_the_sign_in_page_in_german(german_page: Page) -> None:
    german_page.goto("/accounts/login/")
    expect(german_page.locator("html")).to_have_attribute("lang", "de")
    expect(german_page.get_by_role("heading", name="Anmelden")).to_be_visible()
    expect(german_page.get_by_label("Benutzername")).to_be_visible()
    expect(german_page.get_by_role("button", name="Anmelden")).to_be_visible()


def test_a_german_browser_chats_in_german(german_page: Page, app_url: str, user: User) -> None:
    sign_in(german_page, app_url, user)
    chat = ChatPage(german_page)
    chat.open("/")
    expect(german_page.locator("html")).to_have_attribute("lang", "de")
    # Server-rendered: the composer and the sidebar.
    expect(german_page.locator("#send")).to_have_text("Senden")
    expect(chat.composer).to_have_attribute("placeholder", "Nachricht …")
    expect(german_page.locator(".new-chat")).to_contain_text("Neuer Chat")
    # Made by the modules: the connection state, a reply's footer, a banner.
    expect(chat.connection).to_have_text("Verbunden", timeout=QUICK)
    chat.send("Hallo", model="sim/echo")
    reply = chat.last_reply()
    chat.wait_status(reply, "complete", timeout=STREAM)
    expect(reply.locator(".copy-message")).to_have_text("Kopieren")
    german_page.locator("#temperature").evaluate("(field) => { field.value = '5'; }")
    chat.composer.fill("Noch eine Frage")
    chat.composer.press("Enter")
    expect(german_page.locator(".banner-text")).to_have_text(
        "Die Temperatur muss eine Zahl von 0 bis 2 sein (oder leer für den Standardwert)."
    )


def test_a_german_socket_explains_a_refusal_in_german(
    german_page: Page, app_url: str, user: User
) -> None:
    sign_in(german_page, app_url, user)
    chat = ChatPage(german_page)
    chat.open("/")
    chat.choose_model("sim/echo")
    # A frame the page's own checks would never send (temperature out of range), on a socket
    # opened by the German browser: the server's refusal follows that handshake's language.
    german_page.evaluate(
        """() => new Promise((resolve) => {
            const ws = new WebSocket(`ws://${location.host}/ws/chat/`);
            ws.onmessage = (event) => {
                const frame = JSON.parse(event.data);
                if (frame.type === "hello") {
                    ws.send(JSON.stringify({type: "send", client_id: "x1", text: "hi",
                                            model: "sim/echo", temperature: 9}));
                } else if (frame.type === "error") {
                    document.body.dataset.refusal = frame.code + "|" + frame.message;
                    ws.close();
                    resolve();
                }
            };
        })"""
    )
    expect(german_page.locator("body")).to_have_attribute(
        "data-refusal", "invalid|temperature muss eine Zahl von 0 bis 2 sein."
    )


def test_an_english_browser_keeps_english(page: Page, app_url: str, user: User) -> None:
    page.goto("/accounts/login/")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    sign_in(page, app_url, user)
    chat = ChatPage(page)
    chat.open("/")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#send")).to_have_text("Send")
    expect(chat.connection).to_have_text("Connected")
    expect(page.locator("#i18n-catalogue")).to_have_count(0)
