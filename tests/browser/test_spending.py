"""Spending in a real browser: a person's chat header and settings page, the admin's dashboard
with its charts drawn from real usage records, and a rate-limited send that counts down and
goes again by itself."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import PASSWORD, QUICK, STREAM, ChatPage, User, sign_in
from tests.servers import app_server, manage

pytestmark = pytest.mark.browser

PRICED = "openai/gpt-4o"


def chart_data(page: Page, canvas: str) -> dict[str, Any]:
    """What Chart.js drew in `canvas`: its labels and values (and whether pixels were drawn)."""
    data: dict[str, Any] = page.evaluate(
        """(selector) => {
          const canvas = document.querySelector(selector);
          const chart = window.Chart.getChart(canvas);
          const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
          return {
            labels: chart.data.labels,
            values: chart.data.datasets[0].data,
            painted: pixels.data.some((channel) => channel !== 0),
          };
        }""",
        canvas,
    )
    return data


def a_priced_reply(chat: ChatPage, text: str) -> str:
    """Send `text` to a priced model, wait for the reply, return the chat header's cost."""
    chat.send(text, PRICED)
    chat.wait_status(chat.last_reply(), "complete")
    cost = chat.page.locator("#conversation-cost")
    expect(cost).to_be_visible(timeout=QUICK)
    expect(cost).to_contain_text("This chat: $", timeout=QUICK)
    return cost.inner_text()


def test_a_person_sees_a_chats_cost_and_their_spend_in_settings(chat: ChatPage) -> None:
    first = a_priced_reply(chat, "What does this cost?")
    # The header follows the chat: a second reply adds to it.
    chat.send("And this one?")
    chat.wait_status(chat.last_reply(), "complete")
    expect(chat.page.locator("#conversation-cost")).not_to_have_text(first, timeout=QUICK)
    header = chat.page.locator("#conversation-cost").inner_text()
    header_cost = re.search(r"\$([0-9.]+)", header)
    assert header_cost

    # A fresh load shows the same sum.
    chat.reload()
    expect(chat.page.locator("#conversation-cost")).to_have_text(header, timeout=QUICK)

    page = chat.page
    page.goto("/settings/")
    spent = page.locator("#spent-this-month")
    expect(spent).to_contain_text(f"${header_cost.group(1)}", timeout=QUICK)
    expect(spent).to_contain_text("in 2 replies")
    expect(page.locator("#monthly-limit")).to_have_text("No limit")
    expect(page.locator("#budget-resets")).to_have_text(re.compile(r"^1 \w+ \d{4}$"))

    expect(page.locator("#spend-chart")).to_have_attribute("data-drawn", "30", timeout=QUICK)
    drawn = chart_data(page, "#spend-chart")
    assert len(drawn["labels"]) == 30 and drawn["painted"]
    assert drawn["values"][-1] == pytest.approx(float(header_cost.group(1)), rel=1e-2)
    assert sum(drawn["values"]) == pytest.approx(float(header_cost.group(1)), rel=1e-2)


@pytest.fixture
def admin(env: dict[str, str]) -> User:
    name = f"admin-{uuid.uuid4().hex[:8]}"
    manage(
        env,
        "shell",
        "-c",
        f"from chat.models import User; User.objects.create_superuser({name!r}, '', {PASSWORD!r})",
    )
    return User(name, PASSWORD, None)


def test_the_admin_dashboard_draws_charts_from_real_records(
    chat: ChatPage, user: User, admin: User, app_url: str, page: Page
) -> None:
    a_priced_reply(chat, "Count me in the dashboard")
    chat.page.context.clear_cookies()
    sign_in(page, app_url, admin)

    page.goto("/admin/chat/usage/dashboard/")
    expect(page.get_by_role("heading", name="Usage dashboard")).to_be_visible(timeout=QUICK)
    for canvas in ("#chart-days", "#chart-people", "#chart-models"):
        expect(page.locator(canvas)).to_have_attribute("data-drawn", re.compile(r"^[1-9]"))

    people = chart_data(page, "#chart-people")
    assert user.username in people["labels"] and people["painted"]
    spent = people["values"][people["labels"].index(user.username)]
    assert spent > 0
    models = chart_data(page, "#chart-models")
    assert PRICED in models["labels"]
    days = chart_data(page, "#chart-days")
    assert len(days["labels"]) == 30
    assert sum(days["values"]) == pytest.approx(sum(people["values"]))

    # The per-person table agrees with the chart, and sorts by a click on a heading.
    row = page.locator("#table-people tbody tr", has_text=user.username)
    assert float(row.locator("td").nth(1).inner_text()) == pytest.approx(spent)
    heading = page.locator("#table-people th", has_text="Spent (USD)")
    heading.get_by_role("button").click()
    expect(heading).to_have_attribute("aria-sort", "descending")
    heading.get_by_role("button").click()
    expect(heading).to_have_attribute("aria-sort", "ascending")
    values = [
        float(v) for v in page.locator("#table-people tbody td:nth-child(2)").all_inner_texts()
    ]
    assert values == sorted(values)


@pytest.fixture
def one_reply_at_a_time(env: dict[str, str], var_dir: Path) -> Iterator[str]:
    """Another app process on the same database, where a person may have one reply at once."""
    limited = {**env, "CONCURRENT_REPLIES": "1"}
    with app_server(limited, log_path=var_dir / "app-limited.log") as (url, _proc):
        yield url


def test_a_rate_limited_send_counts_down_and_goes_again_by_itself(
    page: Page, user: User, one_reply_at_a_time: str
) -> None:
    sign_in(page, one_reply_at_a_time, user)
    chat = ChatPage(page)
    chat.open(f"{one_reply_at_a_time}/")
    chat.choose_model("sim/long")
    chat.composer.fill("A long story, please")
    chat.composer.press("Enter")
    expect(chat.composer).to_have_value("", timeout=QUICK)
    chat.wait_status(chat.last_reply(), "streaming", timeout=QUICK)

    # A second chat while the first reply is still being written: one reply at a time here.
    # (In the same chat the page would not send at all: a chat writes one reply at a time.)
    chat.open(f"{one_reply_at_a_time}/")
    chat.choose_model("sim/echo")
    chat.composer.fill("And then?")
    chat.composer.press("Enter")
    status = page.locator("#composer-status")
    expect(status).to_contain_text(re.compile(r"Sending again in \d+ s"), timeout=QUICK)
    expect(chat.composer).to_have_value("And then?")  # the draft is kept meanwhile

    # Once the first reply is done, the countdown's resend goes through: stored and answered.
    expect(chat.composer).to_have_value("", timeout=STREAM)
    expect(chat.by_role("user")).to_have_count(1)
    expect(chat.by_role("user").last).to_contain_text("And then?")
    chat.wait_status(chat.last_reply(), "complete", timeout=STREAM)
