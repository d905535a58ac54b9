"""Budgets and rate limits for sends stored together in one transaction (`store_turns`): each send
of the group counts the ones before it, so a group takes exactly what one-by-one sends would."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from chat import budgets, limits, rate_limits, tokens
from chat.incoming_frames import SendRequest
from chat.models import Message, TeamBudget, Usage, User
from chat.replies.turns import Refused, Turn, store_turn, store_turns
from tests.conftest import ALICE_TOKEN, BOB_TOKEN, service_or_skip
from tests.rows import finish

pytestmark = pytest.mark.django_db(transaction=True)


def send(client_id: str) -> SendRequest:
    return SendRequest(client_id=client_id, conversation_id=None, text="hi", model="m/x")


@pytest.fixture
def people(alice: User, bob: User) -> tuple[User, User]:
    tokens.store_token(alice, ALICE_TOKEN)
    tokens.store_token(bob, BOB_TOKEN)
    return alice, bob


def outcomes(results: list[Turn | Refused]) -> list[str]:
    return [r.code if isinstance(r, Refused) else "stored" for r in results]


def test_a_group_takes_only_the_replies_at_once_a_person_may_have(people, settings):
    alice, bob = people
    settings.CONCURRENT_REPLIES = 2
    group = [(alice, send(f"a{i}")) for i in range(4)] + [(bob, send("b"))]

    results = store_turns(group)

    assert outcomes(results) == ["stored", "stored", "rate_limited", "rate_limited", "stored"]
    assert Message.objects.filter(author=alice).count() == 2
    refused = results[2]
    assert isinstance(refused, Refused) and refused.retry_after == 5.0


def test_a_group_takes_only_what_the_budget_allows(people, settings):
    alice, bob = people
    settings.BUDGET_RESERVE_PER_REPLY = 0.25
    alice.monthly_limit = Decimal("0.50")
    alice.save()

    results = store_turns([(alice, send(f"a{i}")) for i in range(4)] + [(bob, send("b"))])

    assert outcomes(results) == [
        "stored",
        "stored",
        "budget_exceeded",
        "budget_exceeded",
        "stored",
    ]
    assert Message.objects.filter(author=alice).count() == 2


@pytest.fixture
def counted_in_redis(settings) -> Iterator[None]:
    service_or_skip("Redis", 6379)
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    settings.REDIS_PREFIX = f"noboxweb-test-{uuid.uuid4().hex[:12]}"
    yield
    client = rate_limits._clients[settings.REDIS_URL]
    for key in client.scan_iter(match=f"{settings.REDIS_PREFIX}:*"):
        client.delete(key)


@pytest.mark.parametrize("counted_in", ["database", "redis", "database, Redis being down"])
def test_a_group_takes_only_the_minutes_sends_left(people, settings, counted_in, request):
    if counted_in == "redis":
        request.getfixturevalue("counted_in_redis")
    elif counted_in == "database, Redis being down":
        settings.REDIS_URL = "redis://127.0.0.1:9/0"  # nothing listens: every call fails
    alice, _ = people
    settings.SEND_PER_MINUTE = 3
    earlier = store_turn(alice, send("earlier"))
    finish(earlier.reply.pk, status=Message.Status.COMPLETE, content="ok")

    results = store_turns([(alice, send(f"a{i}")) for i in range(4)])

    assert outcomes(results) == ["stored", "stored", "rate_limited", "rate_limited"]
    assert Message.objects.filter(author=alice).count() == 3
    # The first of the three leaves the minute in a minute: that is the wait, not more.
    waits = [r.retry_after for r in results if isinstance(r, Refused)]
    assert all(w is not None and 55 < w <= 60 for w in waits), waits


def test_a_wait_is_measured_from_when_the_sends_were_counted(people, settings):
    """The count said "over" a moment ago; the oldest send has left the window since. The wait
    is what was left of it then (about a second), not a fresh minute."""
    alice, _ = people
    settings.SEND_PER_MINUTE = 3
    for i in range(3):
        store_turn(alice, send(f"s{i}"))
    counted_at = timezone.now() - timedelta(seconds=2)
    Message.objects.filter(author=alice).update(created_at=counted_at - timedelta(seconds=59))

    wait = rate_limits.send_wait(alice, "next", 0, 3, counted_at)

    assert 0.9 < wait < 1.1
    # A group whose own earlier sends fill the minute waits for the minute.
    assert rate_limits.send_wait(alice, "next", 3, 0, counted_at) == rate_limits.WINDOW_SECONDS


def test_the_limits_read_in_sql_answers_what_the_orm_answers(people, charlie):
    alice, bob = people
    now = timezone.now()
    month_start, _ = budgets.month_of(now)
    TeamBudget.objects.update_or_create(pk=1, defaults={"default_monthly_limit": Decimal("7.5")})
    bob.monthly_limit = Decimal("2.25")
    bob.save(update_fields=["monthly_limit"])
    for cost in ("0.1", "0.2", "0.30000001"):  # SQLite adds these up as floats
        Usage.objects.create(user=alice, user_name="alice", cost=Decimal(cost))
    last_month = month_start - timedelta(seconds=1)
    Usage.objects.create(user=alice, user_name="alice", cost=Decimal(5), finished_at=last_month)
    Usage.objects.create(user=bob, user_name="bob", cost=None)  # the price was unknown
    store_turn(alice, send("running"))  # a reply in flight, a send of this minute
    done = store_turn(bob, send("earlier"))
    finish(done.reply.pk, status=Message.Status.COMPLETE, content="ok")
    Message.objects.filter(author=bob).update(created_at=now - timedelta(minutes=2))
    pks = [alice.pk, bob.pk, charlie.pk]

    read_at = timezone.now()
    read = {pk: (budget, recent) for pk, budget, recent in limits.read_people(pks, read_at)}

    orm = budgets.with_month(User.objects.filter(pk__in=pks), read_at)
    minute_ago = read_at - timedelta(seconds=rate_limits.WINDOW_SECONDS)
    for person in orm:
        sent = Message.objects.filter(author=person, created_at__gt=minute_ago).count()
        assert read[person.pk] == (budgets.from_annotations(person), sent)
    # The figures set up above, so that both reads cannot be wrong the same way.
    assert read[alice.pk][0].limit == Decimal("7.5")
    assert read[alice.pk][0].spent == Decimal("0.60000001")
    assert (read[alice.pk][0].in_flight, read[alice.pk][1]) == (1, 1)
    bob_budget, bob_sent = read[bob.pk]
    assert bob_budget.limit == Decimal("2.25") and bob_budget.spent == 0 and bob_sent == 0
    assert read[charlie.pk][0].spent == 0 and read[charlie.pk][0].in_flight == 0
