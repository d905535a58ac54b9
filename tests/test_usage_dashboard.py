"""The admin's usage dashboard, CSV export and user list: every figure is the sum of the records
it stands for, and the export gives the records back exactly."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from chat.models import AuditEvent, Conversation, Message, TeamBudget, Usage, User
from chat.usage_report import CSV_COLUMNS

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()


@pytest.fixture
def as_admin(django_user_model: type[User]) -> Client:
    boss = django_user_model.objects.create_superuser("boss", "boss@example.com", "boss-pw-123")
    client = Client()
    client.force_login(boss)
    return client


def at(days_ago: int, hour: int = 12) -> datetime:
    day = TODAY - timedelta(days=days_ago)
    return timezone.make_aware(datetime(day.year, day.month, day.day, hour))


@pytest.fixture
def records(alice: User, bob: User) -> list[Usage]:
    """A spread of records: two people, three models, several days, an estimate, an unknown
    price, a deleted conversation; and one 40 days old, outside the default range."""
    conversation = Conversation.objects.create(owner=alice)
    reply = Message.objects.create(conversation=conversation, seq=2, role="assistant")
    rows: list[tuple[User, str, str | None, int, int, int, dict[str, Any]]] = [
        (alice, "openai/gpt-4o", "0.0125", 1000, 250, 0, {"message": reply}),
        (alice, "openai/gpt-4o", "0.00375", 300, 100, 0, {"estimated": True}),
        (alice, "meta/llama-3.3-70b", "0.00000138", 1, 1, 2, {}),
        (bob, "anthropic/claude-3.5-sonnet", "1.5", 100000, 80000, 5, {"token_source": "team"}),
        (bob, "x/unpriced", None, 10, 20, 5, {}),
        (bob, "openai/gpt-4o", "9.99", 1, 1, 40, {}),
    ]
    made = []
    for user, model, cost, prompt, completion, days_ago, extra in rows:
        made.append(
            Usage.objects.create(
                user=user,
                user_name=user.username,
                conversation=extra.pop("conversation", conversation),
                model=model,
                token_source=extra.pop("token_source", "own"),
                prompt_tokens=prompt,
                completion_tokens=completion,
                total_tokens=prompt + completion,
                pricing={"prompt": "0.0000025", "completion": "0.00001"} if cost else None,
                prompt_price=Decimal("0.0000025") if cost else None,
                completion_price=Decimal("0.00001") if cost else None,
                cost=Decimal(cost) if cost else None,
                status="complete",
                started_at=at(days_ago, 11),
                finished_at=at(days_ago),
                **extra,
            )
        )
    return made


def charts_of(html: str) -> dict[str, Any]:
    found = re.search(r'<script id="usage-charts" type="application/json">(.*?)</script>', html)
    assert found
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def in_range(start: date, end: date) -> list[Usage]:
    return [
        r for r in Usage.objects.all() if start <= timezone.localtime(r.finished_at).date() <= end
    ]


def test_every_total_is_the_sum_of_its_records(as_admin, records):
    response = as_admin.get("/admin/chat/usage/dashboard/")
    assert response.status_code == 200
    context = response.context
    expected = in_range(TODAY - timedelta(days=29), TODAY)
    assert len(expected) == 5  # the 40-day-old record is outside

    totals = context["totals"]
    assert totals["records"] == len(expected)
    assert totals["cost"] == sum(r.cost for r in expected if r.cost is not None)
    assert totals["total_tokens"] == sum(r.total_tokens for r in expected)
    assert totals["prompt_tokens"] == sum(r.prompt_tokens for r in expected)
    assert totals["unknown_price"] == sum(1 for r in expected if r.cost is None)
    assert totals["estimated"] == sum(1 for r in expected if r.estimated)

    for groups, attribute in ((context["people"], "user_name"), (context["models"], "model")):
        for group in groups:
            mine = [r for r in expected if getattr(r, attribute) == group["key"]]
            assert group["records"] == len(mine)
            assert group["cost"] == sum((r.cost for r in mine if r.cost is not None), Decimal(0))
            assert group["total_tokens"] == sum(r.total_tokens for r in mine)
        assert sum(g["cost"] for g in groups) == totals["cost"]
        assert sum(g["total_tokens"] for g in groups) == totals["total_tokens"]

    days = context["days"]
    assert len(days) == 30
    for group in days:
        mine = [
            r
            for r in expected
            if timezone.localtime(r.finished_at).date().isoformat() == group["key"]
        ]
        assert group["cost"] == sum((r.cost for r in mine if r.cost is not None), Decimal(0))
    assert sum(g["cost"] for g in days) == totals["cost"]

    charts = charts_of(response.content.decode())
    assert sum(map(Decimal, charts["days"]["cost"])) == totals["cost"]
    assert charts["people"]["labels"] == ["bob", "alice"]  # the bigger spender first
    assert [Decimal(c) for c in charts["models"]["cost"]] == [g["cost"] for g in context["models"]]


def test_a_chosen_range_counts_only_its_days(as_admin, records):
    start, end = TODAY - timedelta(days=45), TODAY - timedelta(days=4)
    response = as_admin.get(
        "/admin/chat/usage/dashboard/", {"start": start.isoformat(), "end": end.isoformat()}
    )
    expected = in_range(start, end)
    assert {r.model for r in expected} == {
        "anthropic/claude-3.5-sonnet",
        "x/unpriced",
        "openai/gpt-4o",
    }
    assert response.context["totals"]["cost"] == Decimal("1.5") + Decimal("9.99")
    assert len(response.context["days"]) == 42


def test_a_backwards_range_is_refused_with_a_message(as_admin, records):
    response = as_admin.get(
        "/admin/chat/usage/dashboard/", {"start": "2026-05-10", "end": "2026-05-01"}
    )
    assert response.status_code == 200
    assert "The end is before the start." in response.content.decode()
    assert len(response.context["days"]) == 30  # the default range instead


def test_garbage_dates_fall_back_to_the_default_range(as_admin, records):
    response = as_admin.get("/admin/chat/usage/dashboard/", {"start": "yesterday", "end": "<b>"})
    assert response.status_code == 200
    assert "&lt;b&gt;" in response.content.decode() or "<b>" not in response.content.decode()
    assert response.context["totals"]["records"] == 5


def test_the_csv_export_gives_back_every_record_exactly(as_admin, records):
    start = TODAY - timedelta(days=60)
    response = as_admin.get(
        "/admin/chat/usage/export.csv", {"start": start.isoformat(), "end": TODAY.isoformat()}
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))

    assert tuple(rows[0].keys()) == CSV_COLUMNS
    assert len(rows) == len(records) == 6
    for row in rows:
        record = Usage.objects.get(pk=int(row["id"]))
        assert datetime.fromisoformat(row["finished_at"]) == record.finished_at
        assert datetime.fromisoformat(row["started_at"]) == record.started_at
        assert int(row["user_id"]) == record.user_id and row["user_name"] == record.user_name
        assert (
            int(row["conversation_id"]) if row["conversation_id"] else None
        ) == record.conversation_id
        assert (int(row["message_id"]) if row["message_id"] else None) == record.message_id
        assert (row["model"], row["token_source"], row["status"], row["kind"]) == (
            record.model,
            record.token_source,
            record.status,
            record.kind,
        )
        assert int(row["prompt_tokens"]) == record.prompt_tokens
        assert int(row["completion_tokens"]) == record.completion_tokens
        assert int(row["total_tokens"]) == record.total_tokens
        assert row["estimated"] == ("true" if record.estimated else "false")
        for column in ("prompt_price", "completion_price", "cost"):
            value = getattr(record, column)
            assert (Decimal(row[column]) if row[column] else None) == value
    assert sum(Decimal(r["cost"]) for r in rows if r["cost"]) == sum(
        r.cost for r in records if r.cost is not None
    )


def test_the_export_defuses_spreadsheet_formulas(as_admin, alice):
    Usage.objects.create(user=alice, user_name="=HYPERLINK(1)", model="@evil", cost=Decimal(1))
    response = as_admin.get("/admin/chat/usage/export.csv")
    [row] = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert (row["user_name"], row["model"]) == ("'=HYPERLINK(1)", "'@evil")


def test_staff_without_the_view_permission_are_refused(alice, records):
    alice.is_staff = True
    alice.save()
    client = Client()
    client.force_login(alice)
    assert client.get("/admin/chat/usage/dashboard/").status_code == 403
    assert client.get("/admin/chat/usage/export.csv").status_code == 403
    alice.user_permissions.add(Permission.objects.get(codename="view_usage"))
    assert client.get("/admin/chat/usage/dashboard/").status_code == 200


def test_the_user_list_shows_spend_this_month_and_budget_state(as_admin, alice, bob, records):
    alice.monthly_limit = Decimal("0.01")  # today's records alone are over it
    alice.save()
    TeamBudget.objects.create(pk=1, default_monthly_limit=Decimal("100"))
    html = as_admin.get("/admin/chat/user/").content.decode()
    month_start = timezone.localtime().replace(day=1, hour=0, minute=0, second=0, microsecond=0)

    for user in (alice, bob):
        spent = sum(
            (
                r.cost
                for r in Usage.objects.filter(user=user, finished_at__gte=month_start)
                if r.cost
            ),
            Decimal(0),
        )
        assert f'field-this_month">${spent:.2f} of ' in row_of(html, user.username)
    assert "of $0.01 (exceeded)" in row_of(html, "alice")
    assert "of $100.00 (ok)" in row_of(html, "bob")


def row_of(html: str, username: str) -> str:
    """The user list's row for `username`."""
    rows = re.findall(r"<tr[^>]*>.*?</tr>", html, re.S)
    [row] = [row for row in rows if f">{username}</a>" in row]
    return str(row)


def test_changing_a_limit_is_audited(as_admin, alice):
    page = as_admin.get(f"/admin/chat/user/{alice.pk}/change/")
    form = page.context["adminform"].form
    data = {
        k: v
        for k, v in form.initial.items()
        if v is not None and k not in ("groups", "user_permissions", "password")
    }
    data.update(
        {
            "username": "alice",
            "monthly_limit": "12.50",
            "date_joined_0": alice.date_joined.strftime("%Y-%m-%d"),
            "date_joined_1": alice.date_joined.strftime("%H:%M:%S"),
            "is_active": "on",
        }
    )
    data.pop("date_joined", None)
    data.pop("last_login", None)
    response = as_admin.post(f"/admin/chat/user/{alice.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    alice.refresh_from_db()
    assert alice.monthly_limit == Decimal("12.50")
    [event] = AuditEvent.objects.filter(action="user.limit_changed")
    assert event.detail == "monthly limit: team default -> $12.50"
    assert event.target_user == alice


def test_the_team_default_is_edited_in_the_admin_and_audited(as_admin):
    budget = TeamBudget.current()
    response = as_admin.post(
        f"/admin/chat/teambudget/{budget.pk}/change/", {"default_monthly_limit": "25"}
    )
    assert response.status_code == 302
    budget.refresh_from_db()
    assert budget.default_monthly_limit == Decimal("25")
    [event] = AuditEvent.objects.filter(action="team.budget_changed")
    assert "$25.00" in event.detail
    assert (
        as_admin.post(
            f"/admin/chat/teambudget/{budget.pk}/change/", {"default_monthly_limit": "-1"}
        ).status_code
        == 200
    )
    budget.refresh_from_db()
    assert budget.default_monthly_limit == Decimal("25")


def test_dates_are_whole_days_in_the_server_time_zone():
    from chat.usage_report import Range

    span = Range(date(2026, 3, 1), date(2026, 3, 31))
    assert span.start_at == datetime(2026, 3, 1, tzinfo=UTC)
    assert span.end_before == datetime(2026, 4, 1, tzinfo=UTC)
