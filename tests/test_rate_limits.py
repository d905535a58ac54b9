"""Per-person send limits (messages a minute, replies at once), through the real consumer and
database, counting in the database and in a real Redis. (Two processes at once:
test_limits_production.)"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.utils import timezone

from chat import rate_limits
from chat.database import in_db_pool
from chat.models import Conversation, Message
from tests.conftest import service_or_skip
from tests.protocol import send_frame
from tests.rows import streaming_reply
from tests.ws import connect, frames_until

pytestmark = pytest.mark.django_db(transaction=True)


async def answer_to(ws: WebsocketCommunicator, frame: dict[str, Any]) -> dict[str, Any]:
    """The ack or error for `frame` (other frames skipped); a fresh turn is awaited to `done`."""
    await ws.send_json_to(frame)
    while True:
        answer: dict[str, Any] = await ws.receive_json_from(timeout=10)
        if answer["type"] in ("ack", "error") and answer.get("client_id") == frame["client_id"]:
            break
    if answer["type"] == "ack" and not answer["duplicate"]:
        await frames_until(ws, "done", timeout=30)
    return answer


@pytest.fixture
def redis_limits(settings):
    """Count sends in the real Redis, under a prefix of this test's own."""
    service_or_skip("Redis", 6379)
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    settings.REDIS_PREFIX = f"noboxweb-test-{uuid.uuid4().hex[:12]}"
    yield
    client = rate_limits._clients.get(settings.REDIS_URL)
    if client is not None:
        for key in client.scan_iter(match=f"{settings.REDIS_PREFIX}:*"):
            client.delete(key)


@pytest.mark.parametrize("counted_in", ["database", "redis"])
async def test_the_send_past_the_per_minute_limit_is_refused_with_when_to_retry(
    alice, alice_token, nobox, settings, counted_in, request
):
    if counted_in == "redis":
        request.getfixturevalue("redis_limits")
    settings.SEND_PER_MINUTE = 3
    ws = await connect(alice)
    answers = [await answer_to(ws, send_frame(f"message {n}")) for n in range(4)]
    await ws.disconnect()

    assert [a["type"] for a in answers] == ["ack", "ack", "ack", "error"]
    refused = answers[-1]
    assert refused["code"] == "rate_limited"
    assert 0 < refused["retry_after"] <= 60
    assert "3 messages a minute" in refused["message"]
    assert await in_db_pool(Message.objects.filter(content="message 3").count)() == 0


async def test_database_count_says_to_retry_when_the_oldest_send_leaves_the_minute(
    alice, alice_token, nobox, settings
):
    settings.SEND_PER_MINUTE = 2
    reply = await streaming_reply(alice)
    await in_db_pool(Message.objects.filter(pk=reply.pk).update)(status="complete")
    conversation = await Conversation.objects.aget(pk=reply.conversation_id)
    forty_seconds_ago = timezone.now() - timedelta(seconds=40)
    for seq, when in ((10, forty_seconds_ago), (12, timezone.now())):
        await Message.objects.acreate(
            conversation=conversation, seq=seq, role="user", author=alice, created_at=when
        )
    ws = await connect(alice)
    refused = await answer_to(ws, send_frame("third"))
    await ws.disconnect()
    assert refused["code"] == "rate_limited"
    # The older send leaves the minute first, in under 20 s (the newer one would take ~60 s).
    assert 0 < refused["retry_after"] <= 20


async def test_a_resent_send_counts_once_in_redis(
    alice, alice_token, nobox, settings, redis_limits
):
    settings.SEND_PER_MINUTE = 2
    ws = await connect(alice)
    frame = send_frame("once")
    assert (await answer_to(ws, frame))["type"] == "ack"
    assert (await answer_to(ws, frame))["duplicate"] is True
    assert (await answer_to(ws, send_frame("twice")))["type"] == "ack"
    assert (await answer_to(ws, send_frame("thrice")))["code"] == "rate_limited"
    await ws.disconnect()


async def test_a_send_past_the_concurrent_replies_limit_is_refused(
    alice, alice_token, nobox, settings
):
    settings.CONCURRENT_REPLIES = 2
    await streaming_reply(alice)
    await streaming_reply(alice)
    ws = await connect(alice)
    refused = await answer_to(ws, send_frame("a third at once"))
    await ws.disconnect()
    assert refused["code"] == "rate_limited"
    assert refused["retry_after"] == rate_limits.CONCURRENT_RETRY_SECONDS
    assert "at most 2 at once" in refused["message"]


async def test_another_persons_replies_do_not_count(alice, alice_token, bob, nobox, settings):
    settings.CONCURRENT_REPLIES = 1
    await streaming_reply(bob)
    ws = await connect(alice)
    assert (await answer_to(ws, send_frame("mine")))["type"] == "ack"
    await ws.disconnect()


async def test_an_unreachable_redis_falls_back_to_the_database(alice, alice_token, nobox, settings):
    settings.REDIS_URL = "redis://127.0.0.1:9/0"  # nothing listens there
    settings.SEND_PER_MINUTE = 1
    ws = await connect(alice)
    assert (await answer_to(ws, send_frame("first")))["type"] == "ack"
    assert (await answer_to(ws, send_frame("second")))["code"] == "rate_limited"
    await ws.disconnect()
    rate_limits._clients.pop(settings.REDIS_URL, None)
