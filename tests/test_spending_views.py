"""What a person sees of their spending: the settings page (this month, limit, reset date, a
30-day chart) and a conversation's cost so far. Totals are sums of the usage records."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from chat import budgets
from chat.models import Conversation, TeamBudget, Usage, User

pytestmark = pytest.mark.django_db


def record(user: User, cost: str | None, days_ago: int = 0, **extra: Any) -> Usage:
    return Usage.objects.create(
        user=user,
        user_name=user.username,
        model=extra.pop("model", "openai/gpt-4o"),
        cost=Decimal(cost) if cost is not None else None,
        total_tokens=extra.pop("total_tokens", 100),
        finished_at=timezone.now() - timedelta(days=days_ago),
        **extra,
    )


def page_json(html: str, element_id: str) -> Any:
    found = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html)
    assert found, f"no {element_id} in the page"
    return json.loads(found.group(1))


@pytest.fixture
def as_alice(alice: User) -> Client:
    client = Client()
    client.force_login(alice)
    return client


def test_settings_show_this_months_spend_the_limit_and_the_reset_day(as_alice, alice, bob):
    start, after = budgets.month_of(timezone.now())
    record(alice, "1.25")
    record(alice, "0.50", estimated=True)
    record(alice, None)  # price unknown: not counted, said apart
    record(bob, "9.00")  # someone else's
    Usage.objects.create(user=alice, cost=Decimal("4"), finished_at=start - timedelta(seconds=1))
    alice.monthly_limit = Decimal("10")
    alice.save()

    html = as_alice.get("/settings/").content.decode()

    assert re.search(r'id="spent-this-month">\$1\.75', html)
    assert "1 estimated" in html
    assert "1 reply this month used a model whose price Nobox did not give" in html
    assert re.search(r'id="monthly-limit">\$10\.00<', html)
    assert f"{after.day} {after:%B %Y}" in html


def test_the_team_default_limit_is_shown_as_such(as_alice):
    TeamBudget.objects.create(pk=1, default_monthly_limit=Decimal("3"))
    html = as_alice.get("/settings/").content.decode()
    assert re.search(r'id="monthly-limit">\$3\.00 <span class="hint">\(team default\)', html)


def test_without_any_limit_the_page_says_so(as_alice):
    assert 'id="monthly-limit">No limit<' in as_alice.get("/settings/").content.decode()


def test_the_chart_has_thirty_days_each_the_sum_of_that_days_records(as_alice, alice, bob):
    record(alice, "0.10", days_ago=0)
    record(alice, "0.15", days_ago=0)
    record(alice, "2.00", days_ago=3)
    record(alice, "7.00", days_ago=30)  # outside the 30 days
    record(bob, "5.00", days_ago=3)

    data = page_json(as_alice.get("/settings/").content.decode(), "spend-data")

    today = timezone.localdate()
    assert data["days"][0] == (today - timedelta(days=29)).isoformat()
    assert data["days"][-1] == today.isoformat()
    assert len(data["days"]) == len(data["cost"]) == 30
    by_day = dict(zip(data["days"], map(Decimal, data["cost"]), strict=True))
    assert by_day[today.isoformat()] == Decimal("0.25")
    assert by_day[(today - timedelta(days=3)).isoformat()] == Decimal("2.00")
    assert sum(by_day.values()) == Decimal("2.25")


def test_a_conversation_shows_its_cost_so_far(as_alice, alice):
    conversation = Conversation.objects.create(owner=alice)
    other = Conversation.objects.create(owner=alice)
    record(alice, "0.012", conversation=conversation)
    record(alice, "0.003", conversation=conversation, estimated=True)
    record(alice, None, conversation=conversation)
    record(alice, "1", conversation=other)

    answer = as_alice.get(f"/api/c/{conversation.public_id}/usage").json()
    assert answer == {"cost": "0.015", "records": 3, "unknown_price": 1, "estimated": 1}
    page = as_alice.get(f"/c/{conversation.public_id}/").content.decode()
    assert page_json(page, "page-data")["usage"] == answer


def test_another_persons_conversation_cost_is_not_found(bob):
    conversation = Conversation.objects.create(owner=bob)
    client = Client()
    client.force_login(User.objects.create_user("eve", "", "eve-password"))
    assert client.get(f"/api/c/{conversation.public_id}/usage").status_code == 404


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("0", "$0.00"),
        ("0.0123", "$0.01"),
        ("1234.5", "$1,234.50"),
        ("0.000312", "$0.000312"),
        ("0.00000138", "$0.00000138"),
        ("0.009999", "$0.01"),
    ],
)
def test_money_reads_as_cents_or_three_digits_below_a_cent(value, text):
    from chat.usage_report import usd

    assert usd(Decimal(value)) == text
