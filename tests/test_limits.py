"""Budgets and rate limits for sends stored together in one transaction (`store_turns`): each send
of the group counts the ones before it, so a group takes exactly what one-by-one sends would."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest

from chat import rate_limits, tokens
from chat.incoming_frames import SendRequest
from chat.models import Message, User
from chat.replies.turns import Refused, Turn, store_turn, store_turns
from tests.conftest import ALICE_TOKEN, BOB_TOKEN, service_or_skip

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
    Message.objects.finish(earlier.reply.pk, status=Message.Status.COMPLETE, content="ok")

    results = store_turns([(alice, send(f"a{i}")) for i in range(4)])

    assert outcomes(results) == ["stored", "stored", "rate_limited", "rate_limited"]
    assert Message.objects.filter(author=alice).count() == 3
