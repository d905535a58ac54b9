"""axe-core (from npm) over every kind of page, in light and dark (prefers-color-scheme is
emulated; the admin follows it, its theme being "auto"): no serious or critical violation. The
check runs in a context that bypasses the CSP only so the test can inject axe; the pages
themselves are served as always."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import QUICK, ChatPage, User, sign_in
from tests.browser.test_share import create_link
from tests.servers import ROOT

pytestmark = pytest.mark.browser

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = {"serious", "critical"}
RICH_REPLY = (
    "## Heading\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- [x] done\n- [ ] not yet\n\n"
    "```python\nprint('a line long enough to scroll sideways in a narrow code block, really')\n```"
    "\n\n> a quote with `code` and a [link](https://example.com)"
)


def violations(page: Page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    found: list[dict[str, Any]] = page.evaluate(
        "async () => (await axe.run(document, { resultTypes: ['violations'] })).violations"
    )
    return [
        f"{v['impact']}: {v['id']} ({v['help']}) at "
        + ", ".join(str(node["target"]) for node in v["nodes"][:3])
        for v in found
        if v.get("impact") in BLOCKING
    ]


@pytest.fixture(params=["light", "dark"])
def axe_page(request: pytest.FixtureRequest, browser: Browser, app_url: str) -> Iterator[Page]:
    context = browser.new_context(
        base_url=app_url,
        viewport={"width": 1280, "height": 900},
        locale="en-US",
        bypass_csp=True,  # to inject axe; nothing the pages do depends on it
        color_scheme=request.param,
    )
    try:
        yield context.new_page()
    finally:
        context.close()


def check(page: Page, what: str) -> None:
    found = violations(page)
    assert not found, f"{what}:\n" + "\n".join(found)


def test_the_sign_in_page(axe_page: Page) -> None:
    axe_page.goto("/accounts/login/")
    check(axe_page, "sign-in page")


def test_the_chat_empty_streaming_rich_and_failed(axe_page: Page, app_url: str, user: User) -> None:
    sign_in(axe_page, app_url, user)
    chat = ChatPage(axe_page)
    chat.open("/")
    check(axe_page, "empty chat")

    chat.send("Tell me a long story", model="sim/long")
    chat.wait_text_longer_than(chat.last_reply(), 40)
    check(axe_page, "streaming reply")
    axe_page.keyboard.press("Escape")
    chat.wait_status(chat.last_reply(), "stopped")

    chat.send(RICH_REPLY, model="sim/echo")
    chat.wait_status(chat.last_reply(), "complete")
    chat.send("fail please", model="sim/server-error")
    chat.wait_status(chat.last_reply(), "error")
    check(axe_page, "chat with markdown, a table, code, a task list, a stopped and a failed reply")


def test_the_chat_with_the_model_list_open(axe_page: Page, app_url: str, user: User) -> None:
    sign_in(axe_page, app_url, user)
    chat = ChatPage(axe_page)
    chat.open("/")
    chat.choose_model("sim/echo")  # so the list has a Recently used group as well
    chat.model.press("ArrowDown")
    expect(chat.model).to_have_attribute("aria-expanded", "true")
    check(axe_page, "model list open, grouped, the chosen model active")
    chat.model.fill("claude")
    expect(chat.model_option("anthropic/claude-3.5-sonnet")).to_be_visible()
    check(axe_page, "model list filtered")
    chat.model.fill("no such model")
    expect(axe_page.locator(".model-status")).to_contain_text("No model matches")
    check(axe_page, "model list with nothing matching")


def test_the_settings_page(axe_page: Page, app_url: str, user: User) -> None:
    sign_in(axe_page, app_url, user)
    axe_page.goto("/settings/")
    check(axe_page, "settings page")


def test_the_admin_index_and_lists(
    axe_page: Page, app_url: str, env: dict[str, str], make_staff: Callable[[], User]
) -> None:
    sign_in(axe_page, app_url, make_staff())
    for path in (
        "/admin/",
        "/admin/chat/user/",
        "/admin/chat/conversation/",
        "/admin/chat/auditevent/",
    ):
        axe_page.goto(path)
        check(axe_page, f"admin {path}")


def test_a_shared_conversation_and_the_admin_pages_about_it(
    axe_page: Page, app_url: str, make_staff: Callable[..., User]
) -> None:
    """The shared page (live, with an incomplete reply), the owner's links, and what the admin
    sees of them: the usage dashboard, the share links and the user's change form."""
    staff = make_staff(with_token=True)
    sign_in(axe_page, app_url, staff)
    chat = ChatPage(axe_page)
    chat.open("/")
    chat.send(RICH_REPLY, model="sim/echo")
    chat.wait_status(chat.last_reply(), "complete")
    chat.send("This will break", model="sim/error-mid-stream")
    chat.wait_status(chat.last_reply(), "error")
    url = create_link(chat, "live")

    axe_page.goto(url)
    shared = ChatPage(axe_page)
    shared.wait_connected()
    expect(shared.last_reply().locator(".message-incomplete")).to_be_visible(timeout=QUICK)
    check(axe_page, "shared conversation (live, an incomplete reply)")
    axe_page.goto("/shares/")
    check(axe_page, "the owner's shared links")

    axe_page.goto("/admin/chat/usage/dashboard/")
    expect(axe_page.locator("#table-people tbody tr").first).to_be_visible()
    check(axe_page, "usage dashboard")
    axe_page.goto(f"/admin/chat/sharelink/?q={staff.username}")
    check(axe_page, "admin share links")
    open_first_row(axe_page)
    expect(axe_page.locator(".field-public_id")).to_be_visible()
    check(axe_page, "admin share link page")
    axe_page.goto("/admin/chat/sharesettings/")
    open_first_row(axe_page)
    expect(axe_page.locator("#id_audience")).to_be_visible()
    check(axe_page, "admin sharing settings")
    axe_page.goto(f"/admin/chat/user/?q={staff.username}")
    open_first_row(axe_page)
    expect(axe_page.locator(".token-summary")).to_contain_text("Own token: …")
    check(axe_page, "admin user change form")


def open_first_row(page: Page) -> None:
    """From an admin list, the change page of its first row."""
    page.locator("#result_list tbody th a").first.click()
    page.wait_for_url(re.compile(r"/change/"))
