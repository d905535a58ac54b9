"""Storing sends in groups (`store_turns`, `Intake`): a group must answer every send exactly as
storing them one by one would, in less database work."""

from __future__ import annotations

import asyncio
import base64
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chat import tokens
from chat.incoming_frames import SendRequest, parse_send
from chat.models import Conversation, Message, NoboxToken, User
from chat.replies import generation, turns
from chat.replies.intake import Intake
from chat.replies.turns import Refused, Turn, store_turn, store_turns
from tests import rows
from tests.conftest import ALICE_TOKEN, BOB_TOKEN

pytestmark = pytest.mark.django_db(transaction=True)


def send(client_id: str, conversation: str | None = None, text: str = "hello") -> SendRequest:
    return SendRequest(client_id=client_id, conversation_id=conversation, text=text, model="m/x")


@pytest.fixture
def people(alice: User, bob: User, charlie: User) -> tuple[User, User, User]:
    tokens.store_token(alice, ALICE_TOKEN)
    tokens.store_token(bob, BOB_TOKEN)
    return alice, bob, charlie  # charlie has no token


def finish(reply: Message) -> None:
    rows.finish(reply.pk, status=Message.Status.COMPLETE, content="ok")


def outcome(result: Turn | Refused) -> tuple[str, ...]:
    if isinstance(result, Refused):
        return ("refused", result.code)
    return ("turn", result.user_message.client_id or "", str(result.duplicate))


def test_a_group_answers_every_kind_of_send_as_one_by_one_would(people, monkeypatch):
    alice, bob, charlie = people
    earlier = store_turn(alice, send("earlier"))
    finish(earlier.reply)
    running = store_turn(bob, send("running"))  # its reply is still streaming
    group = [
        (alice, send("a1")),  # new chat
        (alice, send("a2", earlier.conversation.public_id, "and then?")),  # existing chat
        (alice, send("a3", earlier.conversation.public_id)),  # same chat again: busy
        (alice, send("earlier")),  # resent frame of a stored turn
        (bob, send("b1")),
        (bob, send("b1")),  # the same frame twice in one group
        (bob, send("b2", running.conversation.public_id)),  # a reply runs there: busy
        (bob, send("b3", earlier.conversation.public_id)),  # alice's chat: not found
        (charlie, send("c1")),  # no token
    ]

    one_by_one: list[str] = []
    monkeypatch.setattr(turns, "store_turn", _recording_store(one_by_one))

    results = store_turns(group)

    assert [outcome(r) for r in results] == [
        ("turn", "a1", "False"),
        ("turn", "a2", "False"),
        ("refused", "busy"),
        ("turn", "earlier", "True"),
        ("turn", "b1", "False"),
        ("turn", "b1", "True"),
        ("refused", "busy"),
        ("refused", "not_found"),
        ("refused", "no_token"),
    ]
    assert Message.objects.filter(author=charlie).count() == 0
    assert Message.objects.filter(author=bob, client_id="b1").count() == 1
    # The plain sends were stored together; only the others went one by one.
    assert one_by_one == ["a3", "earlier", "b1", "b2", "b3", "c1"]


def _recording_store(calls: list[str]):
    def store(user: User, req: SendRequest) -> Turn:
        calls.append(req.client_id)
        return store_turn(user, req)

    return store


def test_a_grouped_turn_carries_the_whole_visible_history_and_settings(people):
    alice, _, _ = people
    first = store_turn(alice, send("first", text="What is 2+2?"))
    finish(first.reply)
    chat = first.conversation.public_id
    follow_up = SendRequest(
        client_id="second",
        conversation_id=chat,
        text="And 3+3?",
        model="m/y",
        system_prompt="Be brief.",
        temperature=0.5,
        max_tokens=40,
    )

    turn, fresh = store_turns([(alice, follow_up), (alice, send("other"))])

    assert isinstance(turn, Turn) and turn.request is not None
    assert turn.request.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "And 3+3?"},
    ]
    assert (turn.request.model, turn.request.temperature, turn.request.max_tokens) == (
        "m/y",
        0.5,
        40,
    )
    assert [m.seq for m in (turn.user_message, turn.reply)] == [3, 4]
    stored = Conversation.objects.get(public_id=chat)
    assert (stored.next_seq, stored.model, stored.system_prompt) == (5, "m/y", "Be brief.")
    assert isinstance(fresh, Turn) and fresh.request is not None
    assert fresh.request.messages == [{"role": "user", "content": "hello"}]
    assert fresh.reply.status == Message.Status.STREAMING and fresh.reply.pk is not None
    assert Conversation.objects.get(pk=fresh.conversation.pk).next_seq == 3


def test_a_page_naming_the_last_message_shown_is_grouped_and_any_other_place_is_not(
    people, monkeypatch, unlimited
):
    alice, bob, _ = people
    first = store_turn(alice, send("first", text="one"))
    finish(first.reply)
    second = store_turn(alice, send("second", first.conversation.public_id, "two"))
    finish(second.reply)
    theirs = store_turn(bob, send("theirs", text="bob's"))
    finish(theirs.reply)
    chat = first.conversation.public_id
    after = SendRequest(  # after the visible branch's last message, as a page sends it
        client_id="after-last",
        conversation_id=chat,
        text="three",
        model="m/x",
        parent_id=second.reply.public_id,
    )
    branching = SendRequest(  # after an older reply: a second version of "two"
        client_id="after-first",
        conversation_id=theirs.conversation.public_id,
        text="again",
        model="m/x",
        parent_id=theirs.user_message.public_id,
    )
    one_by_one: list[str] = []
    monkeypatch.setattr(turns, "store_turn", _recording_store(one_by_one))

    grouped, branched = store_turns([(alice, after), (bob, branching)])

    assert one_by_one == ["after-first"]
    assert isinstance(grouped, Turn) and grouped.request is not None
    assert [m["content"] for m in grouped.request.messages] == ["one", "ok", "two", "ok", "three"]
    assert isinstance(branched, Turn) and branched.request is not None
    assert [m["content"] for m in branched.request.messages] == ["bob's", "again"]
    assert Conversation.objects.get(pk=theirs.conversation.pk).branched


@pytest.fixture
def unlimited(settings):
    """No rate limit in the way: these tests are about grouping (limits: test_limits)."""
    settings.CONCURRENT_REPLIES = settings.SEND_PER_MINUTE = 1000


def test_a_group_costs_a_handful_of_queries_whatever_its_size(people, unlimited):
    alice, bob, _ = people

    def queries_for(size: int, tag: str) -> list[str]:
        group = [(alice if i % 2 else bob, send(f"{tag}{i}")) for i in range(size)]
        with CaptureQueriesContext(connection) as queries:
            results = store_turns(group)
        assert all(isinstance(r, Turn) and not r.duplicate for r in results)
        return [q["sql"][:80] for q in queries]

    small, large = queries_for(4, "small"), queries_for(40, "large")
    # About the same statements for 4 sends as for 40: only SQLite's limit on parameters per
    # statement splits a large insert in two. One by one, 40 sends were 40 transactions of a
    # dozen statements each.
    assert len(small) <= len(large) <= len(small) + 2 <= 15, large


def test_a_group_to_chats_with_history_costs_the_same_statements_whatever_its_size(
    people, unlimited
):
    alice, bob, _ = people
    chats = []
    for i in range(12):  # chats with two turns of history each
        person = alice if i % 2 else bob
        first = store_turn(person, send(f"first{i}"))
        finish(first.reply)
        finish(store_turn(person, send(f"again{i}", first.conversation.public_id)).reply)
        chats.append(first.conversation)

    def statements_for(sent: list[Conversation], tag: str) -> int:
        group = [(c.owner, send(f"{tag}{i}", c.public_id)) for i, c in enumerate(sent)]
        with CaptureQueriesContext(connection) as queries:
            results = store_turns(group)
        assert all(isinstance(r, Turn) and not r.duplicate for r in results)
        for result in results:
            assert isinstance(result, Turn)
            finish(result.reply)
        return len(queries)

    # Before, each chat's row was saved by an UPDATE of its own: 3 chats and 9 differed by 6.
    assert statements_for(chats[:3], "small") == statements_for(chats[3:], "large")


def test_a_new_chat_is_inserted_with_its_first_turn_and_its_history_is_not_read_back(people):
    alice, _, _ = people
    with CaptureQueriesContext(connection) as queries:
        turn = store_turn(alice, send("new chat", text="first words"))

    statements = [q["sql"] for q in queries]
    about_chats = [sql for sql in statements if sql.lstrip('"').startswith(("INSERT", "UPDATE"))]
    assert [sql.split()[0] for sql in about_chats if '"chat_conversation"' in sql] == ["INSERT"]
    after_insert = statements[statements.index(about_chats[0]) :]
    assert not [sql for sql in after_insert if sql.startswith('SELECT "chat_message"')]
    stored = Conversation.objects.get(pk=turn.conversation.pk)
    assert (stored.next_seq, stored.visible_leaf, stored.model) == (3, 2, "m/x")
    assert turn.request is not None
    assert turn.request.messages == [{"role": "user", "content": "first words"}]


def test_a_group_saves_each_chat_with_its_own_settings_and_next_place(people, unlimited):
    alice, bob, _ = people
    earlier = {}
    for person in (alice, bob):
        first = store_turn(person, send(f"first-{person.username}"))
        finish(first.reply)
        earlier[person.pk] = Conversation.objects.get(pk=first.conversation.pk)
    as_alice = SendRequest(
        "a2", earlier[alice.pk].public_id, "again", "m/alice", system_prompt="Be brief."
    )
    as_bob = SendRequest("b2", earlier[bob.pk].public_id, "again", "m/bob", temperature=0.2)

    store_turns([(alice, as_alice), (bob, as_bob)])

    for person, (model, prompt, temperature) in (
        (alice, ("m/alice", "Be brief.", None)),
        (bob, ("m/bob", "", 0.2)),
    ):
        stored = Conversation.objects.get(pk=earlier[person.pk].pk)
        assert (stored.model, stored.system_prompt, stored.temperature) == (
            model,
            prompt,
            temperature,
        )
        assert stored.next_seq == earlier[person.pk].next_seq + 2
        assert stored.visible_leaf == stored.next_seq - 1
        assert stored.updated_at > earlier[person.pk].updated_at
        assert list(stored.messages.values_list("seq", flat=True).order_by("seq")) == [1, 2, 3, 4]


def test_a_grouped_follow_up_sends_the_files_of_earlier_messages(people, unlimited):
    alice, bob, _ = people
    image = b"\x89PNG\r\n\x1a\n" + bytes(range(40))
    part = {"type": "file", "file": {"name": "pic.png", "data": base64.b64encode(image).decode()}}
    frame = {"client_id": "with-file", "conversation": None, "text": "see", "model": "m/x"}
    first = store_turn(alice, parse_send(frame | {"attachments": [part]}))
    finish(first.reply)

    follow_up, other = store_turns(
        [(alice, send("follow-up", first.conversation.public_id)), (bob, send("other"))]
    )

    assert isinstance(follow_up, Turn) and follow_up.request is not None
    content = follow_up.request.messages[0]["content"]
    assert content[0] == {"type": "text", "text": "see"}
    assert content[1]["type"] == "image_url"
    assert base64.b64encode(image).decode() in content[1]["image_url"]["url"]
    assert isinstance(other, Turn) and other.request is not None
    assert other.request.messages == [{"role": "user", "content": "hello"}]


def test_a_token_records_its_last_use_to_the_minute_not_with_a_write_per_send(people, unlimited):
    alice, bob, _ = people

    def token_writes(group: list[tuple[User, SendRequest]]) -> tuple[list[Turn | Refused], int]:
        with CaptureQueriesContext(connection) as queries:
            results = store_turns(group) if len(group) > 1 else [store_turn(*group[0])]
        for result in results:
            assert isinstance(result, Turn)
            finish(result.reply)
        return results, sum('UPDATE "chat_noboxtoken"' in q["sql"] for q in queries)

    [first], writes = token_writes([(alice, send("one"))])
    assert writes == 1
    assert NoboxToken.objects.get(user=alice).last_used_at == first.reply.created_at  # type: ignore[union-attr]
    chat = first.conversation.public_id  # type: ignore[union-attr]
    assert token_writes([(alice, send("two", chat))])[1] == 0
    assert token_writes([(alice, send("three", chat)), (bob, send("bob"))])[1] == 1  # bob's

    minutes_ago = timezone.now() - timedelta(minutes=2)
    NoboxToken.objects.filter(user=alice).update(last_used_at=minutes_ago)
    [later], writes = token_writes([(alice, send("four", chat))])
    assert writes == 1
    assert NoboxToken.objects.get(user=alice).last_used_at == later.reply.created_at  # type: ignore[union-attr]


def test_a_conflict_the_group_could_not_see_sends_every_send_one_by_one(people, monkeypatch):
    alice, _, _ = people
    running = store_turn(alice, send("running"))
    # Stand-in for another process starting a reply between the group's check and its insert:
    # the group believes the chat is free, the database's unique index knows better.
    monkeypatch.setattr(turns, "_busy", lambda conversations: set())

    results = store_turns([(alice, send("x", running.conversation.public_id)), (alice, send("y"))])

    assert [outcome(r) for r in results] == [("refused", "busy"), ("turn", "y", "False")]
    assert Message.objects.filter(author=alice, client_id="x").count() == 0


async def test_sends_arriving_together_are_stored_as_one_group(people, monkeypatch, unlimited):
    alice, bob, _ = people
    groups: list[int] = []
    real = turns.store_turns

    def counted(sends):
        groups.append(len(sends))
        return real(sends)

    monkeypatch.setattr("chat.replies.intake.store_turns", counted)
    intake = Intake()

    stored = await asyncio.gather(
        *(intake.store(alice if i % 2 else bob, send(f"g{i}")) for i in range(10))
    )

    assert sorted(t.user_message.client_id or "" for t in stored) == sorted(
        f"g{i}" for i in range(10)
    )
    assert sum(groups) == 10 and len(groups) < 10


async def test_a_refused_send_raises_for_its_sender_only(people):
    alice, _, charlie = people
    intake = Intake()

    ok, refused = await asyncio.gather(
        intake.store(alice, send("fine")),
        intake.store(charlie, send("no-token")),
        return_exceptions=True,
    )

    assert isinstance(ok, Turn)
    assert isinstance(refused, Refused) and refused.code == "no_token"


async def test_a_turn_whose_sender_left_still_gets_its_reply(people, nobox, monkeypatch):
    alice, _, _ = people
    started: list[str] = []
    monkeypatch.setattr(generation, "start", _recording(started))
    intake = Intake()

    waiting = asyncio.ensure_future(intake.store(alice, send("left")))
    await asyncio.sleep(0)  # the send is queued for storing
    waiting.cancel()  # the socket closed meanwhile
    await intake.drained()

    stored = await Message.objects.aget(author=alice, client_id="left")
    assert started == [(await _reply_of(stored)).public_id]


def _recording(started: list[str]):
    async def start(turn: Turn) -> None:
        started.append(turn.reply.public_id)

    return start


async def _reply_of(message: Message) -> Message:
    return await Message.objects.aget(conversation_id=message.conversation_id, seq=message.seq + 1)
