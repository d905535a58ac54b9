"""The model picker in a real browser: a searchable combobox used with the keyboard alone, grouped
by provider under the recently used models, with price and context badges, fast with 300+ models,
and usable on a phone (it fits the screen; every chat control is at least 44 px to tap)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, FloatRect, Locator, Page, ViewportSize, expect

from chat.nobox.simulator import CATALOGUE, CATALOGUE_TOKEN_PREFIX, MODELS
from tests.browser.conftest import PASSWORD, QUICK, ChatPage, User, sign_in
from tests.servers import create_user, manage

pytestmark = pytest.mark.browser

PHONE: ViewportSize = {"width": 390, "height": 844}
TAP = 44  # px, WCAG 2.5.5


@pytest.fixture(scope="module")
def catalogue_user(env: dict[str, str]) -> User:
    """A user whose token the simulator answers with 300+ models (chat.nobox.simulator.CATALOGUE):
    some free, some without a price, some without a context length."""
    name = f"u-{uuid.uuid4().hex[:12]}"
    token = f"{CATALOGUE_TOKEN_PREFIX}-{uuid.uuid4().hex[:16]}"
    create_user(env, name, PASSWORD, token)
    return User(name, PASSWORD, token)


@pytest.fixture
def big_chat(page: Page, app_url: str, catalogue_user: User) -> ChatPage:
    sign_in(page, app_url, catalogue_user)
    chat = ChatPage(page)
    chat.open("/")
    chat.expect_model("openai/gpt-4o")  # the list has arrived
    return chat


def listbox(page: Page) -> Locator:
    return page.locator("#model-list")


def expect_active(page: Page, model: str) -> None:
    option_id = _option_id(page, model)
    expect(page.locator("#model")).to_have_attribute("aria-activedescendant", option_id)


def _option_id(page: Page, model: str) -> str:
    option = ChatPage(page).model_option(model)
    expect(option).to_be_visible(timeout=QUICK)
    found = option.get_attribute("id")
    assert found
    return found


def last_request_model(sim_url: str) -> str:
    bodies: list[dict[str, Any]] = httpx.get(
        sim_url.removesuffix("/_f_") + "/_sim/requests", timeout=10
    ).json()
    return str(bodies[-1]["model"])


def group_labels(page: Page) -> list[str]:
    labels = page.locator("#model-list .model-group:not([hidden]) .model-group-label")
    return labels.all_text_contents()


def test_keyboard_alone_finds_and_chooses_a_model_and_the_reply_comes_from_it(
    chat: ChatPage, sim_url: str
) -> None:
    page = chat.page
    model = chat.model
    chat.expect_model("openai/gpt-4o")  # the first offered, nothing remembered yet
    page.locator("#conversation-search").focus()
    page.keyboard.press("Tab")
    expect(model).to_be_focused()
    expect(model).to_have_attribute("role", "combobox")
    expect(model).to_have_attribute("aria-expanded", "false")

    page.keyboard.type("SIMULATOR")  # the provider, in any case
    expect(model).to_have_attribute("aria-expanded", "true")
    simulated = [m.id for m in MODELS if m.id.startswith("sim/")]
    visible = listbox(page).locator("[role=option]:visible")
    expect(visible).to_have_count(len(simulated))
    expect_active(page, simulated[0])  # the first match, so Enter takes it
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    expect_active(page, simulated[2])
    page.keyboard.press("ArrowUp")
    expect_active(page, simulated[1])
    page.keyboard.press("End")
    expect_active(page, simulated[-1])
    page.keyboard.press("Home")
    expect_active(page, simulated[0])
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")

    chat.expect_model(simulated[1])
    expect(model).to_have_attribute("aria-expanded", "false")
    expect(model).to_have_value(next(m.name for m in MODELS if m.id == simulated[1]))
    expect(model).to_be_focused()

    # Escape closes the list and puts back what was chosen.
    page.keyboard.press("ArrowDown")
    expect(model).to_have_attribute("aria-expanded", "true")
    page.keyboard.type("echo")
    expect(visible).to_have_count(1)
    page.keyboard.press("Escape")
    expect(model).to_have_attribute("aria-expanded", "false")
    chat.expect_model(simulated[1])
    expect(model).to_have_value(next(m.name for m in MODELS if m.id == simulated[1]))

    # Now the echo model, by its name's words, then to the message box and send.
    page.keyboard.type("simulator: ECHO")
    page.keyboard.press("Enter")
    chat.expect_model("sim/echo")
    page.keyboard.press("Shift+Escape")
    expect(chat.composer).to_be_focused()
    page.keyboard.type("picked by keyboard 5c1e")
    page.keyboard.press("Enter")
    reply = chat.last_reply()
    chat.wait_status(reply, "complete")
    expect(chat.body(reply)).to_contain_text("picked by keyboard 5c1e")  # sim/echo echoes
    expect(reply.locator(".message-model")).to_have_text("sim/echo")
    assert last_request_model(sim_url) == "sim/echo"


def test_search_matches_name_id_and_provider_and_says_when_nothing_matches(
    chat: ChatPage,
) -> None:
    page, model = chat.page, chat.model
    visible = listbox(page).locator("[role=option]:visible")
    model.click()
    expect(model).to_have_attribute("aria-expanded", "true")
    for query, ids in [
        ("anthropic", ["anthropic/claude-3.5-sonnet"]),  # provider
        ("LLAMA 70b", ["meta/llama-3.3-70b"]),  # words of the name, any case
        ("gpt-4o", ["openai/gpt-4o"]),  # id (and public id)
    ]:
        model.fill(query)
        expect(visible).to_have_count(len(ids))
        assert [visible.nth(i).get_attribute("data-id") for i in range(len(ids))] == ids
    model.fill("no such model zz")
    expect(visible).to_have_count(0)
    expect(page.locator(".model-status")).to_have_text("No model matches “no such model zz”")
    # A click outside closes the list and keeps the model.
    page.locator("#chat-title").click()
    expect(model).to_have_attribute("aria-expanded", "false")
    expect(model).to_have_value("GPT-4o")
    # The pointer works too: open with the toggle, click an option.
    page.locator(".model-toggle").click()
    chat.model_option("meta/llama-3.3-70b").click()
    chat.expect_model("meta/llama-3.3-70b")
    expect(model).to_be_focused()


def test_options_are_grouped_by_provider_with_price_and_context_badges(big_chat: ChatPage) -> None:
    page = big_chat.page
    big_chat.model.click()
    expect(listbox(page).locator("[role=option]")).to_have_count(len(MODELS) + len(CATALOGUE))
    labels = group_labels(page)
    assert labels == sorted(labels)
    assert {"OpenAI", "Anthropic", "Meta", "Google", "DeepSeek", "xAI", "Simulator"} <= set(labels)
    # Each option sits under its provider's label.
    gpt = big_chat.model_option("openai/gpt-4o")
    expect(gpt.locator("xpath=..").locator(".model-group-label")).to_have_text("OpenAI")

    expect(gpt.locator(".model-badge")).to_have_text(
        ["Input $2.50 · Output $10 per 1M", "128k context"]
    )
    expect(big_chat.model_option("meta/llama-3.3-70b").locator(".model-badge")).to_have_text(
        ["Input $0.59 · Output $0.79 per 1M", "131k context"]
    )
    expect(big_chat.model_option("sim/echo").locator(".model-badge")).to_have_text(
        ["Free", "128k context"]
    )
    unpriced = next(m for m in CATALOGUE if m.prompt_price is None and m.context_length is None)
    expect(big_chat.model_option(unpriced.id).locator(".model-badge")).to_have_text(
        ["Price unknown"]
    )
    # The badges are part of what a screen reader hears for the option.
    expect(
        page.get_by_role("option", name="GPT-4o Input $2.50 · Output $10 per 1M 128k context")
    ).to_have_count(1)
    expect(gpt).to_have_attribute("aria-selected", "true")


def test_three_hundred_models_open_and_filter(big_chat: ChatPage) -> None:
    """The whole catalogue opens and a search narrows it (how fast: bench, not here)."""
    page = big_chat.page
    big_chat.model.press("ArrowDown")
    expect(listbox(page).locator("[role=option]").first).to_be_visible()
    big_chat.model.fill("catalogue-1")
    expect(listbox(page).locator("[role=option]:visible")).to_have_count(
        sum("catalogue-1" in m.id for m in CATALOGUE)
    )


def test_recently_used_models_come_first_after_a_reload(chat: ChatPage) -> None:
    page = chat.page
    chat.choose_model("sim/markdown")
    chat.choose_model("meta/llama-3.3-70b")
    chat.reload()
    chat.expect_model("meta/llama-3.3-70b")  # remembered
    chat.model.press("ArrowDown")
    assert group_labels(page)[0] == "Recently used"
    recent = page.locator("#model-list .model-group[data-recent] [role=option]")
    expect(recent).to_have_count(2)
    assert [recent.nth(i).get_attribute("data-id") for i in range(2)] == [
        "meta/llama-3.3-70b",
        "sim/markdown",
    ]
    # The chosen one is active in its provider's group.
    expect_active(page, "meta/llama-3.3-70b")
    # While searching, a match is listed once, under its provider.
    chat.model.fill("llama")
    expect(listbox(page).locator("[role=option]:visible")).to_have_count(1)
    assert "Recently used" not in group_labels(page)


def conversation_with_model(env: dict[str, str], user: User, model: str) -> str:
    """A conversation of `user` made with `model` (as if Nobox listed it once); its public id."""
    code = (
        "from chat.models import Conversation, User; "
        f"c = Conversation.objects.create(owner=User.objects.get(username={user.username!r}), "
        f"title='Old one', model={model!r}); print(c.public_id)"
    )
    return manage(env, "shell", "-c", code).strip().splitlines()[-1]


def test_a_conversation_model_no_longer_offered_stays_chosen_and_says_so(
    page: Page, app_url: str, user: User, env: dict[str, str]
) -> None:
    public_id = conversation_with_model(env, user, "retired/model-x")
    sign_in(page, app_url, user)
    chat = ChatPage(page)
    chat.open(f"/c/{public_id}/")
    expect(chat.model).to_have_value("retired/model-x (not in your model list)", timeout=QUICK)
    chat.expect_model("retired/model-x")
    chat.model.press("ArrowDown")
    assert group_labels(page)[0] == "This conversation"


def test_without_a_token_the_picker_says_no_models(page: Page, app_url: str, make_user) -> None:
    sign_in(page, app_url, make_user())
    chat = ChatPage(page)
    chat.open("/")
    expect(chat.model).to_have_attribute("placeholder", "No models available", timeout=QUICK)
    chat.expect_model("")
    chat.model.press("ArrowDown")
    expect(page.locator(".model-status")).to_have_text("No models available")


# --- phones ---------------------------------------------------------------------------------


@pytest.fixture
def phone(browser: Browser, app_url: str, catalogue_user: User) -> Iterator[ChatPage]:
    context = browser.new_context(
        base_url=app_url, viewport=PHONE, is_mobile=True, has_touch=True, locale="en-US"
    )
    try:
        page = context.new_page()
        sign_in(page, app_url, catalogue_user)
        chat = ChatPage(page)
        chat.open("/")
        chat.expect_model("openai/gpt-4o")
        yield chat
    finally:
        context.close()


def box(locator: Locator) -> FloatRect:
    found = locator.bounding_box()
    assert found is not None, f"{locator} has no box"
    return found


def assert_tappable(locator: Locator, what: str) -> None:
    size = box(locator)
    assert size["width"] >= TAP and size["height"] >= TAP, f"{what}: {size}"


def test_on_a_phone_the_list_fits_the_screen_and_nothing_is_cut_off(
    phone: ChatPage, env: dict[str, str], catalogue_user: User
) -> None:
    page = phone.page
    phone.model.tap()
    popup = page.locator(".model-popup")
    expect(popup).to_be_visible()
    frame = box(popup)
    assert frame["x"] >= 0 and frame["x"] + frame["width"] <= PHONE["width"]
    assert frame["y"] + frame["height"] <= PHONE["height"]
    overflowing = page.evaluate(
        """() => [...document.querySelectorAll("#model-list [role=option]")]
            .filter((o) => o.scrollWidth > o.clientWidth).map((o) => o.dataset.id)"""
    )
    assert overflowing == []
    first = listbox(page).locator("[role=option]").first
    assert_tappable(first, "an option")
    phone.model_option("sim/error-mid-stream").tap()
    phone.expect_model("sim/error-mid-stream")
    expect(popup).to_be_hidden()

    # The closed control cuts a long label with an ellipsis, inside the screen.
    retired = "retired/a-model-whose-identifier-is-long"
    phone.open(f"/c/{conversation_with_model(env, catalogue_user, retired)}/")
    expect(phone.model).to_have_value(f"{retired} (not in your model list)", timeout=QUICK)
    control = box(phone.model)
    assert control["x"] >= 0 and control["x"] + control["width"] <= PHONE["width"]
    cut = phone.model.evaluate(
        "(el) => [el.scrollWidth > el.clientWidth, getComputedStyle(el).textOverflow]"
    )
    assert cut == [True, "ellipsis"]


def test_on_a_phone_every_chat_control_is_at_least_44_px(phone: ChatPage) -> None:
    page = phone.page
    phone.send("Tell me a long story", model="sim/long")
    phone.wait_text_longer_than(phone.last_reply(), 40)
    assert_tappable(phone.stop_button, "Stop")
    phone.stop_button.tap()
    phone.wait_status(phone.last_reply(), "stopped")
    phone.send("hello", model="sim/echo")
    phone.wait_status(phone.last_reply(), "complete")
    for selector, what in [
        ("#send", "Send"),
        ("#attach", "Attach"),
        ("#model", "model picker"),
        ("#settings-toggle", "Chat options"),
        ("#conversation-menu summary", "conversation menu"),
        ("#sidebar-toggle", "sidebar toggle"),
    ]:
        assert_tappable(page.locator(selector), what)
    assert_tappable(phone.last_reply().locator(".copy-message"), "message Copy")

    page.locator("#sidebar-toggle").tap()
    row = page.locator("#conversation-list .conversation-row").first
    expect(row).to_be_visible()
    assert_tappable(page.locator("#sidebar .new-chat"), "New chat")
    assert box(row.locator("a").first)["height"] >= TAP, "conversation row"
    toggle = row.locator(".row-actions-toggle")
    assert_tappable(toggle, "row actions")
    toggle.tap()
    for item in row.locator(".row-actions button").all():
        assert box(item)["height"] >= TAP, f"row action {item.inner_text()}"


def test_phone_tap_targets_follow_a_coarse_pointer_not_only_a_narrow_screen(
    browser: Browser, app_url: str, user: User
) -> None:
    """A tablet (wide, touch) gets the same 44 px targets; a desktop mouse keeps compact ones."""
    sizes = {}
    for touch in (True, False):
        context = browser.new_context(
            base_url=app_url,
            viewport={"width": 1024, "height": 768},
            has_touch=touch,
            is_mobile=touch,
        )
        try:
            page = context.new_page()
            sign_in(page, app_url, user)
            ChatPage(page).open("/")
            sizes[touch] = box(page.locator("#settings-toggle"))["height"]
        finally:
            context.close()
    assert sizes[True] >= TAP > sizes[False], sizes


def test_on_a_phone_a_long_username_does_not_widen_the_page(
    browser: Browser, app_url: str, env: dict[str, str]
) -> None:
    long_name = User(f"someone-with-a-very-long-username-{uuid.uuid4().hex[:8]}", PASSWORD, None)
    create_user(env, long_name.username, long_name.password)
    context = browser.new_context(base_url=app_url, viewport=PHONE, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        sign_in(page, app_url, long_name)
        page.goto("/settings/")
        width = page.evaluate("() => document.scrollingElement.scrollWidth")
        assert width <= PHONE["width"], (
            f"the page is {width} px wide on a {PHONE['width']} px phone"
        )
        sign_out = page.get_by_role("button", name=re.compile("Sign out"))
        expect(sign_out).to_be_visible()
        assert box(sign_out)["x"] + box(sign_out)["width"] <= PHONE["width"]
    finally:
        context.close()


def test_an_edit_without_a_model_says_why_the_list_is_empty(
    chat: ChatPage, env: dict[str, str]
) -> None:
    """A conversation without a model (imported, say) and a model list that failed: an Edit is
    not sent to be refused; the page says again why there is no model to pick."""
    page = chat.page
    chat.send("Hello", model="sim/echo")
    chat.wait_status(chat.last_reply(), "complete")
    public_id = page.url.rstrip("/").split("/")[-1]
    manage(
        env,
        "shell",
        "-c",
        "from chat.models import Conversation; "
        f"Conversation.objects.filter(public_id={public_id!r}).update(model='')",
    )
    failure = '{"error": {"code": "upstream_error", "message": "Nobox did not list models."}}'
    page.route(
        "**/api/models",
        lambda route: route.fulfill(status=502, content_type="application/json", body=failure),
    )
    page.evaluate("localStorage.clear()")  # no remembered model either
    chat.reload()
    chat.expect_model("")
    expect(page.locator(".banner-text")).to_have_text(["Nobox did not list models."], timeout=QUICK)
    page.locator(".banner-close").click()  # dismissed: it must come back on its own
    expect(page.locator(".banner")).to_have_count(0)

    question = chat.by_role("user").last
    question.get_by_role("button", name="Edit this message").click()
    field = question.get_by_role("textbox", name="Edit your message")
    field.fill("Hello again")
    field.press("Enter")

    expect(page.locator(".banner-text")).to_have_text(["Nobox did not list models."], timeout=QUICK)
    expect(chat.by_role("user").last.locator(".version-count")).to_have_count(0)
