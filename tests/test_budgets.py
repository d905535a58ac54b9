"""Monthly spending limits, checked before anything reaches Nobox: the real database, the real
consumer and the Nobox simulator over real HTTP. (Two processes at once: test_limits_production.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from chat import budgets
from chat.database import in_db_pool
from chat.models import Conversation, Message, TeamBudget, Usage, User
from tests.protocol import send_frame
from tests.rows import streaming_reply
from tests.ws import connect, frames_until

pytestmark = pytest.mark.django_db(transaction=True)


async def upstream_calls(simulator_url: str) -> int:
    async with httpx.AsyncClient() as client:
        stats = (await client.get(simulator_url.removesuffix("/_f_") + "/_sim/stats")).json()
    return int(stats["chat_completions"])


@in_db_pool
def spend(user, amount: str, when: datetime | None = None) -> None:
    """A usage record of `amount` USD finished at `when` (now by default)."""
    extra = {"finished_at": when} if when else {}
    Usage.objects.create(
        user=user, user_name=user.username, model="m", cost=Decimal(amount), **extra
    )


@in_db_pool
def set_limits(user, own: str | None, team: str | None = None) -> None:
    user.monthly_limit = Decimal(own) if own is not None else None
    user.save(update_fields=["monthly_limit"])
    TeamBudget.objects.update_or_create(
        pk=1, defaults={"default_monthly_limit": Decimal(team) if team is not None else None}
    )


def next_month_first(now: datetime) -> str:
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return f"1 {datetime(year, month, 1):%B} {year}"


async def send(user: User, frame: dict[str, Any]) -> dict[str, Any]:
    ws = await connect(user)
    await ws.send_json_to(frame)
    answer: dict[str, Any] = await ws.receive_json_from(timeout=10)
    if answer["type"] == "ack" and not answer["duplicate"]:
        await frames_until(ws, "done", timeout=30)
    await ws.disconnect()
    return answer


async def test_a_send_over_budget_stores_nothing_and_calls_nobox_never(
    alice, alice_token, nobox, simulator_url
):
    await set_limits(alice, "1.00")
    await spend(alice, "1.00")
    calls = await upstream_calls(simulator_url)

    answer = await send(alice, send_frame("one more?", model="openai/gpt-4o"))

    assert answer["type"] == "error" and answer["code"] == "budget_exceeded"
    assert "$1.00" in answer["message"]
    assert next_month_first(datetime.now(UTC)) in answer["message"]
    assert await upstream_calls(simulator_url) == calls
    assert await in_db_pool(Conversation.objects.count)() == 0
    assert await in_db_pool(Message.objects.count)() == 0


async def test_a_send_into_an_existing_conversation_is_refused_too(alice, alice_token, nobox):
    conversation = await Conversation.objects.acreate(owner=alice)
    await set_limits(alice, "0.50")
    await spend(alice, "0.75")
    answer = await send(alice, send_frame("hi", conversation=conversation.public_id))
    assert answer["code"] == "budget_exceeded"
    assert await in_db_pool(Message.objects.count)() == 0


async def test_under_the_limit_the_send_goes_through(alice, alice_token, nobox):
    await set_limits(alice, "1.00")
    await spend(alice, "0.99")
    answer = await send(alice, send_frame("just under"))
    assert answer["type"] == "ack"


async def test_last_months_spending_does_not_count(alice, alice_token, nobox):
    await set_limits(alice, "1.00")
    start, _ = budgets.month_of(datetime.now(UTC))
    await spend(alice, "5.00", when=start - timedelta(seconds=1))
    assert (await send(alice, send_frame("new month")))["type"] == "ack"


async def test_the_team_default_applies_unless_the_person_has_their_own(
    alice, alice_token, bob, bob_token, nobox
):
    await set_limits(alice, None, team="0.10")
    await set_limits(bob, "5.00", team="0.10")
    await spend(alice, "0.20")
    await spend(bob, "0.20")
    assert (await send(alice, send_frame("team default")))["code"] == "budget_exceeded"
    assert (await send(bob, send_frame("own limit")))["type"] == "ack"


async def test_a_zero_limit_refuses_everything(alice, alice_token, nobox):
    await set_limits(alice, "0")
    assert (await send(alice, send_frame("free model?")))["code"] == "budget_exceeded"


async def test_replies_in_flight_hold_their_reserve(alice, alice_token, nobox, settings):
    settings.BUDGET_RESERVE_PER_REPLY = 0.25
    await set_limits(alice, "0.40")
    await spend(alice, "0.15")
    assert (
        await in_db_pool(budgets.budget_of)(alice)
    ).exceeded is False  # 0.15 of 0.40, nothing in flight
    await streaming_reply(alice, "still writing")  # holds 0.25 more

    answer = await send(alice, send_frame("a second one"))

    assert answer["code"] == "budget_exceeded"
    assert "still being written" in answer["message"]


async def test_a_resent_send_is_answered_even_after_the_budget_ran_out(alice, alice_token, nobox):
    await set_limits(alice, "1.00")
    frame = send_frame("once")
    assert (await send(alice, frame))["type"] == "ack"
    await spend(alice, "2.00")
    again = await send(alice, frame)
    assert again["type"] == "ack" and again["duplicate"] is True


async def test_no_limit_anywhere_means_no_refusal(alice, alice_token, nobox):
    await spend(alice, "1000000")
    assert (await send(alice, send_frame("unlimited")))["type"] == "ack"


def test_the_month_runs_from_the_first_to_the_first():
    start, after = budgets.month_of(datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    assert (start, after) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    start, after = budgets.month_of(datetime(2027, 2, 1, 0, 0, tzinfo=UTC))
    assert (start, after) == (datetime(2027, 2, 1, tzinfo=UTC), datetime(2027, 3, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("spent", "in_flight", "state"),
    [
        ("0", 0, "ok"),
        ("7.99", 0, "ok"),
        ("8", 0, "near"),
        ("9.99", 1, "exceeded"),
        ("10", 0, "exceeded"),
    ],
)
def test_the_budget_state_an_admin_sees(spent, in_flight, state, settings):
    settings.BUDGET_RESERVE_PER_REPLY = 0.02
    now = datetime.now(UTC)
    budget = budgets.Budget(Decimal(10), Decimal(spent), in_flight, now, now)
    assert budget.state == state
    assert budgets.Budget(None, Decimal(spent), in_flight, now, now).state == "no limit"
