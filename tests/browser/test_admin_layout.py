"""The admin's user list and form at 1280 px and on a phone (390 px): nothing pushes the page
sideways, the columns that say who can chat on which token and at what cost stay on screen, and
the form shows Nobox access (the team-token checkbox) before Django's status and permissions."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, Locator, Page, ViewportSize, expect

from tests.browser.conftest import User, sign_in
from tests.servers import manage

pytestmark = pytest.mark.browser

WIDE = ViewportSize(width=1280, height=800)
PHONE = ViewportSize(width=390, height=844)

# What an admin of a team chat reads in the list, on any screen.
ESSENTIAL_COLUMNS = ("username", "is_active", "own_token", "this_month")
# And on a wide one, also these.
WIDE_COLUMNS = ("name_and_email", "staff", "team_token", "last_login")

# People with long names and addresses, half with a token and some allowed the team token: the
# widths a real team brings.
CROWD = """
from chat import tokens
from chat.models import User
for n in range(12):
    person = User.objects.create_user(
        f"crowd-{n:02d}-firstname.lastname-{n}",
        f"firstname.lastname.number{n}@a-rather-long-company-domain.example.com",
        "crowd-password-1",
        first_name="Maximiliane-Josephine",
        last_name=f"Vandenberghe-Oosterhuis {n}",
        may_use_team_token=n % 3 == 0,
    )
    if n % 2:
        tokens.store_token(person, f"sk-crowd-token-{n:04d}", actor_name="test")
# A username as long as Django allows, with no place to break (a test elsewhere makes one too).
User.objects.create_user("crowd-" + "x" * 144, "", "crowd-password-1")
"""


@pytest.fixture(scope="module")
def crowd(env: dict[str, str]) -> None:
    manage(env, "shell", "-c", CROWD)


@pytest.fixture
def admin_at(
    browser: Browser, app_url: str, crowd: None, make_staff: Callable[..., User]
) -> Iterator[Callable[[ViewportSize], Page]]:
    """admin_at(viewport): a page of a signed-in superuser in a browser of that size."""
    staff = make_staff()
    contexts = []

    def open_at(viewport: ViewportSize) -> Page:
        context = browser.new_context(base_url=app_url, viewport=viewport, locale="en-US")
        contexts.append(context)
        page = context.new_page()
        sign_in(page, app_url, staff)
        return page

    yield open_at
    for context in contexts:
        context.close()


def overflow(page: Page, selector: str | None = None) -> int:
    """How many pixels the page (or the element) is wider than what it shows."""
    return int(
        page.evaluate(
            """(selector) => {
                const box = selector ? document.querySelector(selector) : document.scrollingElement;
                return box.scrollWidth - box.clientWidth;
            }""",
            selector,
        )
    )


def assert_on_screen(page: Page, target: Locator) -> None:
    """Visible and inside the viewport's width, without scrolling anything sideways."""
    expect(target).to_be_visible()
    box = target.bounding_box()
    width = page.viewport_size["width"] if page.viewport_size else 0
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, box


def column(page: Page, name: str) -> Locator:
    return page.locator(f"#result_list th.column-{name}")


def test_at_1280_px_the_user_list_fits_without_scrolling_sideways(
    admin_at: Callable[[ViewportSize], Page],
) -> None:
    page = admin_at(WIDE)
    page.goto("/admin/chat/user/")
    expect(page.locator("#result_list tbody tr").first).to_be_visible()
    assert overflow(page) <= 0
    assert overflow(page, "#changelist-form .results") <= 0  # the table fits its box too
    for name in (*ESSENTIAL_COLUMNS, *WIDE_COLUMNS):
        assert_on_screen(page, column(page, name))
    crowded = page.locator("#result_list tr", has_text="crowd-01-firstname.lastname-1")
    assert_on_screen(page, crowded.locator(".field-own_token"))
    expect(crowded.locator(".field-own_token")).to_have_text("…0001 active")


def test_on_a_phone_the_user_list_keeps_the_columns_that_matter_on_screen(
    admin_at: Callable[[ViewportSize], Page],
) -> None:
    page = admin_at(PHONE)
    page.goto("/admin/chat/user/")
    expect(page.locator("#result_list tbody tr").first).to_be_visible()
    assert overflow(page) <= 0
    assert overflow(page, "#changelist-form .results") <= 0
    for name in ESSENTIAL_COLUMNS:
        assert_on_screen(page, column(page, name))
    crowded = page.locator("#result_list tr", has_text="crowd-03-firstname.lastname-3")
    for field in ("username", "own_token", "this_month"):
        assert_on_screen(page, crowded.locator(f".field-{field}"))


@pytest.mark.parametrize("viewport", [WIDE, PHONE], ids=["1280px", "phone"])
def test_the_user_form_shows_nobox_access_before_permissions(
    admin_at: Callable[[ViewportSize], Page], viewport: ViewportSize
) -> None:
    page = admin_at(viewport)
    page.goto("/admin/chat/user/")
    page.get_by_role("link", name="crowd-03-firstname.lastname-3").click()
    expect(page.locator("h1")).to_have_text("Change user")
    assert overflow(page) <= 0

    headings = page.locator("fieldset h2.fieldset-heading").all_inner_texts()
    names = [heading.strip().lower() for heading in headings]
    assert names.index("nobox access") < names.index("status")
    assert names.index("nobox access") < names.index("groups and permissions")

    team_token = page.get_by_label("May use team token")
    team_token.scroll_into_view_if_needed()
    assert_on_screen(page, team_token)
    expect(team_token).to_be_checked()  # crowd member 3 was allowed it
    nobox = page.locator("fieldset", has=page.locator("h2", has_text="Nobox access"))
    expect(nobox.locator(".token-summary")).to_contain_text("Own token: …0003 (active)")
    expect(page.locator("#id_user_permissions_from, #id_user_permissions")).not_to_be_visible()
