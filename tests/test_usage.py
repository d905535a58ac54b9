"""Usage records: one per upstream call, written with the reply's final write, whatever the
reply's end (complete, stopped, interrupted by shutdown or by the sweep, failed), against the
real database and the Nobox simulator over real HTTP."""

from __future__ import annotations

import asyncio
import math
import re
from decimal import Decimal
from typing import Any

import pytest

from chat import tokens
from chat.database import in_db_pool
from chat.models import Conversation, Message, User
from chat.models import Usage as UsageRecord
from chat.nobox import ModelInfo, Price, Usage
from chat.nobox.simulator import find_model
from chat.replies import generation, sweep, writes
from chat.usage import record_reply
from tests.protocol import send_frame
from tests.rows import streaming_reply
from tests.ws import connect, frames_until

pytestmark = pytest.mark.django_db(transaction=True)


async def finished(alice: User, frame: dict[str, Any]) -> dict[str, Any]:
    ws = await connect(alice)
    await ws.send_json_to(frame)
    frames = await frames_until(ws, "done", timeout=30)
    await ws.disconnect()
    message: dict[str, Any] = frames[-1]["message"]
    return message


@in_db_pool
def records(**filters: object) -> list[UsageRecord]:
    return list(UsageRecord.objects.filter(**filters).order_by("pk"))


async def test_a_reply_records_its_usage_and_cost_at_the_copied_price(alice, alice_token, nobox):
    message = await finished(alice, send_frame("price me", model="openai/gpt-4o"))

    [record] = await records()
    reply = await Message.objects.select_related("conversation").aget(public_id=message["id"])
    sim = find_model("openai/gpt-4o")
    assert sim.prompt_price is not None and sim.completion_price is not None  # a priced model
    assert record.message_id == reply.pk
    assert record.conversation_id == reply.conversation_id
    assert (record.user_id, record.user_name) == (alice.pk, "alice")
    assert (record.model, record.token_source, record.status) == (
        "openai/gpt-4o",
        "own",
        "complete",
    )
    assert record.estimated is False
    assert (record.prompt_tokens, record.completion_tokens, record.total_tokens) == (
        message["usage"]["prompt_tokens"],
        message["usage"]["completion_tokens"],
        message["usage"]["total_tokens"],
    )
    assert record.pricing == {"prompt": sim.prompt_price, "completion": sim.completion_price}
    expected = (
        Decimal(sim.prompt_price) * record.prompt_tokens
        + Decimal(sim.completion_price) * record.completion_tokens
    )
    assert record.cost == expected.quantize(Decimal("0.00000001")) > 0
    assert record.started_at == reply.created_at and record.finished_at == reply.finished_at


async def test_a_team_token_reply_is_recorded_as_the_teams_for_the_person(bob, nobox):
    await in_db_pool(tokens.store_team_token)("sk-team-token-0099", actor=None)
    bob.may_use_team_token = True
    await in_db_pool(bob.save)()
    await finished(bob, send_frame("on the house"))
    [record] = await records()
    assert (record.user_id, record.token_source) == (bob.pk, "team")


async def test_a_stopped_reply_records_what_it_consumed_once(alice, alice_token, nobox):
    ws = await connect(alice)
    await ws.send_json_to(send_frame("tell me a long story", model="sim/long"))
    frames = await frames_until(ws, "delta")
    await ws.send_json_to({"type": "stop", "conversation": frames[0]["conversation"]})
    done = (await frames_until(ws, "done", timeout=5))[-1]["message"]
    await ws.disconnect()
    await generation.wait_for_running()

    assert done["status"] == "stopped"
    [record] = await records()
    assert record.status == "stopped" and record.estimated is True
    # Nobox's count went with the cancelled stream: the words kept are the estimate's.
    assert record.completion_tokens == math.ceil(len(done["content"]) / 4) > 0
    assert record.prompt_tokens > 0
    assert record.total_tokens == record.prompt_tokens + record.completion_tokens


async def test_a_reply_interrupted_by_shutdown_records_usage_once(alice, alice_token, nobox):
    ws = await connect(alice)
    await ws.send_json_to(send_frame("a long one", model="sim/long"))
    await frames_until(ws, "delta")
    await generation.interrupt_running()
    done = (await frames_until(ws, "done"))[-1]["message"]
    await ws.disconnect()

    [record] = await records()
    assert (record.status, record.estimated) == ("interrupted", True)
    stored = await Message.objects.aget(public_id=done["id"])
    assert record.completion_tokens == math.ceil(len(stored.content) / 4)


async def test_a_swept_reply_is_recorded_once_and_a_late_final_write_corrects_it(alice):
    # An earlier reply of the same model told the price; the orphan's process never could.
    earlier = await streaming_reply(alice, beat_seconds_ago=0)
    await in_db_pool(Message.objects.filter(pk=earlier.pk).update)(model="openai/gpt-4o")
    await in_db_pool(Message.objects.filter(pk=earlier.pk).update)(status="complete")
    earlier = await Message.objects.select_related("conversation").aget(pk=earlier.pk)
    price = {"prompt": "0.000001", "completion": "0.000002"}
    model = ModelInfo("openai/gpt-4o", None, "GPT-4o", price, Price.parse(price))
    await in_db_pool(record_reply)(earlier, Usage(1, 1, 2), model)

    orphan = await streaming_reply(alice, "half an answer!", 60)
    await in_db_pool(Message.objects.filter(pk=orphan.pk).update)(model="openai/gpt-4o")
    assert await sweep.sweep_and_announce() == 1
    assert await sweep.sweep_and_announce() == 0

    [swept] = await records(message=orphan.pk)
    assert (swept.status, swept.estimated) == ("interrupted", True)
    # "q" in the prompt: one token of text and four of framing; 15 characters answered.
    assert (swept.prompt_tokens, swept.completion_tokens) == (5, 4)
    assert swept.prompt_price == Decimal("0.000001")
    assert swept.cost == Decimal("0.000013")

    # The process was only slow: its final write lands after all, with Nobox's count.
    outcome = writes.Outcome("complete", "stop", Usage(7, 9, 16))
    late = writes.Ending(orphan.pk, "half an answer! and the rest", outcome, model)
    await in_db_pool(writes.finish_together)([late])
    [corrected] = await records(message=orphan.pk)
    assert corrected.pk == swept.pk
    assert (corrected.status, corrected.estimated, corrected.total_tokens) == (
        "complete",
        False,
        16,
    )
    assert corrected.cost == Decimal("0.000025")
    assert await in_db_pool(UsageRecord.objects.count)() == 2


async def test_a_failed_call_is_recorded_with_nothing_consumed(alice, alice_token, nobox):
    message = await finished(alice, send_frame("fail please", model="sim/server-error"))
    assert message["status"] == "error"
    [record] = await records()
    assert (record.status, record.total_tokens, record.estimated) == ("error", 0, True)
    assert record.cost == 0  # sim/server-error is a free model: nothing at no price


async def test_a_reply_broken_mid_stream_records_its_partial_text(alice, alice_token, nobox):
    message = await finished(alice, send_frame("cut me off", model="sim/cut"))
    assert message["status"] == "error" and message["content"]
    [record] = await records()
    assert record.completion_tokens == math.ceil(len(message["content"]) / 4)


async def test_without_usage_from_nobox_the_record_is_an_estimate(
    alice, alice_token, nobox, settings
):
    settings.NOBOX_INCLUDE_USAGE = False
    message = await finished(alice, send_frame("no usage please", system="Be brief."))
    [record] = await records()
    assert record.estimated is True
    # System prompt and question, four characters a token, four tokens of framing each.
    prompt = math.ceil((len("Be brief.") + len("no usage please")) / 4) + 2 * 4
    assert record.prompt_tokens == prompt
    assert record.completion_tokens == math.ceil(len(message["content"]) / 4)


async def test_an_unknown_price_is_recorded_as_unknown_not_zero(alice):
    reply = await streaming_reply(alice, "some words")
    await in_db_pool(Message.objects.filter(pk=reply.pk).update)(status="complete")
    model = ModelInfo("x/unpriced", None, "Unpriced", None, Price.parse(None))
    record = await in_db_pool(record_reply)(reply, Usage(3, 4, 7), model)
    assert (record.cost, record.prompt_price, record.pricing) == (None, None, None)


async def test_deleting_a_conversation_keeps_its_usage(alice, alice_token, nobox):
    message = await finished(alice, send_frame("remember my cost", model="openai/gpt-4o"))
    reply = await Message.objects.select_related("conversation").aget(public_id=message["id"])
    await in_db_pool(Conversation.objects.filter(pk=reply.conversation_id).delete)()
    [record] = await records()
    assert (record.conversation_id, record.message_id) == (None, None)
    assert record.cost and record.cost > 0 and record.user_id == alice.pk


def test_a_replys_final_write_is_five_statements_with_its_usage(alice):
    # It runs at the end of every reply (several replies ending together share them): lock and
    # touch the conversation, the reply, read back, its usage record (an upsert), nothing else.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    # The plain functions behind in_db_pool, run in this thread, where the queries are counted.
    reply = streaming_reply.__wrapped__(alice, "partial")  # type: ignore[attr-defined]
    outcome = writes.Outcome(Message.Status.COMPLETE, usage=Usage(3, 4, 7))
    pricing = {"prompt": "0.0000025", "completion": "0.00001"}
    model = ModelInfo("openai/gpt-4o", None, "GPT-4o", pricing, Price.parse(pricing))
    with CaptureQueriesContext(connection) as queries:
        writes.finish_together([writes.Ending(reply.pk, "the whole text", outcome, model)])
    statements = [
        re.sub(r"^\d+ times: ", "", q["sql"]).split()[0]  # executemany is logged "N times: ..."
        for q in queries
        if not q["sql"].startswith(("BEGIN", "SAVEPOINT", "RELEASE", "COMMIT"))
    ]
    # The conversation first (the order a send locks in), then the reply, read back, and usage.
    expected = ["SELECT", "UPDATE", "UPDATE", "SELECT", "INSERT"]
    assert statements == expected, queries.captured_queries
    first = next(q["sql"] for q in queries if not q["sql"].startswith("BEGIN"))
    assert first.startswith('SELECT "chat_conversation"."id"')
    record = UsageRecord.objects.get(message=reply)
    assert (record.user_name, record.total_tokens, record.status) == (alice.username, 7, "complete")


def test_replies_ending_together_are_written_in_one_transaction_each_with_its_own(alice, bob):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    pricing = {"prompt": "0.0000025", "completion": "0.00001"}
    model = ModelInfo("openai/gpt-4o", None, "GPT-4o", pricing, Price.parse(pricing))

    def endings(count: int) -> list[writes.Ending]:
        made = []
        for i in range(count):
            reply = streaming_reply.__wrapped__(alice if i % 2 else bob, "partial")  # type: ignore[attr-defined]
            status = Message.Status.COMPLETE if i % 3 else Message.Status.STOPPED
            outcome = writes.Outcome(status, "stop", Usage(i + 1, 2, i + 3))
            made.append(writes.Ending(reply.pk, f"text {i}", outcome, model if i else None))
        return made

    def statements(group: list[writes.Ending]) -> int:
        with CaptureQueriesContext(connection) as queries:
            written = writes.finish_replies(group)
        assert [m.pk for m in written if isinstance(m, Message)] == [e.reply_pk for e in group]
        return len(queries)

    few, many = endings(2), endings(7)
    assert statements(few) == statements(many)  # one by one it was 4 statements a reply
    for ending in few + many:
        reply = Message.objects.get(pk=ending.reply_pk)
        record = UsageRecord.objects.get(message=reply)
        assert (reply.content, reply.status) == (ending.text, ending.outcome.status)
        assert reply.finished_at is not None and reply.total_tokens == record.total_tokens
        assert record.total_tokens == ending.outcome.usage.total_tokens  # type: ignore[union-attr]
        assert record.user_id == reply.conversation.owner_id
        priced = ending.model is not None
        assert (reply.cost is not None, reply.pricing == pricing) == (priced, priced)


async def test_replies_ending_at_once_share_one_final_write(alice, monkeypatch):
    groups: list[int] = []
    write_alone_or_together = writes.finish_replies

    def counted(endings: list[writes.Ending]) -> Any:
        groups.append(len(endings))
        return write_alone_or_together(endings)

    monkeypatch.setattr(writes, "finish_replies", counted)
    replies = [await streaming_reply(alice, "partial") for _ in range(5)]
    outcome = writes.Outcome(Message.Status.COMPLETE, "stop", Usage(1, 1, 2))
    final_writes = writes.final_writes()  # this test's loop: made with the counted function

    written = await asyncio.gather(
        *(
            final_writes.submit(writes.Ending(reply.pk, f"text {i}", outcome, None))
            for i, reply in enumerate(replies)
        )
    )

    assert [message.content for message in written] == [f"text {i}" for i in range(5)]
    assert groups == [5]  # handed in before the first write began: one write for all
    assert await UsageRecord.objects.filter(message__in=replies).acount() == 5


def test_a_reply_that_cannot_be_written_fails_alone_and_the_others_land(alice):
    written = streaming_reply.__wrapped__(alice, "partial")  # type: ignore[attr-defined]
    gone = streaming_reply.__wrapped__(alice, "partial")  # type: ignore[attr-defined]
    Message.objects.filter(pk=gone.pk).delete()  # e.g. its chat was purged meanwhile
    outcome = writes.Outcome(Message.Status.COMPLETE, "stop", Usage(1, 1, 2))

    results = writes.finish_replies(
        [
            writes.Ending(written.pk, "kept", outcome, None),
            writes.Ending(gone.pk, "lost", outcome, None),
        ]
    )

    assert isinstance(results[0], Message) and results[0].content == "kept"
    assert isinstance(results[1], Message.DoesNotExist)
    assert Message.objects.get(pk=written.pk).status == Message.Status.COMPLETE
    assert UsageRecord.objects.filter(message=written).count() == 1


def test_an_estimate_counts_only_the_branch_the_reply_was_asked_on(alice):
    from chat.usage import estimate_prompt_tokens

    chat = Conversation.objects.create(owner=alice, title="t", next_seq=4, branched=True)
    Message.objects.create(conversation=chat, seq=1, parent_seq=0, role="user", content="q" * 40)
    first = {"conversation": chat, "role": "assistant", "content": "x" * 4000}
    Message.objects.create(seq=2, parent_seq=1, **first)  # the version regenerated away
    again = Message.objects.create(conversation=chat, seq=3, parent_seq=1, role="assistant")
    again = Message.objects.select_related("conversation").get(pk=again.pk)
    # The question alone: 40 characters (10 tokens) and one message's framing.
    assert estimate_prompt_tokens(again) == 10 + 4
