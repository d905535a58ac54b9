"""Conversations as trees (chat/branches.py, docs/protocol.md *Branches*): regenerate, retry,
edit, switching versions; what Nobox is sent is always the visible branch. Driven over the real
socket, database and simulator."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.core.files.storage import default_storage

from chat.branches import Tree
from chat.database import in_db_pool
from chat.models import Attachment, Conversation, Message
from tests.protocol import send_frame
from tests.test_consumer import CODE, PNG, WAV, b64, file_part, send_and_finish, upstream_calls
from tests.test_views import page_data
from tests.ws import connect, frames_until

# --- the tree, pure ------------------------------------------------------------------------------


def test_rows_without_a_parent_follow_the_message_before_them():
    tree = Tree([(1, None, "a"), (2, None, "b"), (3, None, "c")], None)
    assert tree.path() == [1, 2, 3]
    assert tree.versions(2) == []


def test_versions_share_a_parent_and_the_branch_follows_the_leaf():
    # 1 -> 2, and 1 -> 3 (a regenerated reply); 0 marks a first message: 4 edits 1.
    tree = Tree([(1, 0, "q"), (2, 1, "r1"), (3, 1, "r2"), (4, 0, "q2"), (5, 4, "r3")], 3)
    assert tree.path() == [1, 3]
    assert tree.versions(2) == ["r1", "r2"] == tree.versions(3)
    assert tree.versions(4) == ["q", "q2"]
    assert tree.newest_leaf_under(1) == 3  # down the newest version at every step
    assert tree.newest_leaf_under(4) == 5
    # A page that holds the branch up to 2 shares message 1 with the visible branch.
    assert tree.base_for(2) == 1
    assert tree.base_for(5) == 0  # another first message: nothing in common
    assert tree.base_for(3) == 3


def test_a_leaf_that_is_gone_means_the_newest_message():
    tree = Tree([(1, 0, "q"), (2, 1, "r")], 9)
    assert tree.leaf == 2 and Tree([], None).path() == []


# --- over the socket -----------------------------------------------------------------------------

sockets_and_database = pytest.mark.django_db(transaction=True)


def frame(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "client_id": uuid.uuid4().hex, **fields}


async def bodies(simulator_url: str) -> list[dict[str, Any]]:
    import httpx

    async with httpx.AsyncClient() as client:
        found = await client.get(simulator_url.removesuffix("/_f_") + "/_sim/requests")
    return list(found.json())


async def prompt_of_last_call(simulator_url: str) -> list[tuple[str, Any]]:
    """The (role, content) pairs of the latest request Nobox got."""
    return [(m["role"], m["content"]) for m in (await bodies(simulator_url))[-1]["messages"]]


Frames = tuple[dict[str, Any], dict[str, Any]]


async def turn(
    ws: WebsocketCommunicator, text: str, conversation: str | None = None, **extra: Any
) -> Frames:
    """Send `text` and wait for its reply: its (ack, done) frames."""
    return await acted(ws, send_frame(text, conversation=conversation, **extra))


async def acted(ws: WebsocketCommunicator, sent: dict[str, Any]) -> Frames:
    """Send a frame that stores a turn and wait for its reply: its (ack, done) frames."""
    frames = await send_and_finish(ws, sent)
    return next(f for f in frames if f["type"] == "ack"), frames[-1]


@sockets_and_database
async def test_regenerate_makes_a_second_version_of_the_reply_from_the_same_question(
    alice, alice_token, nobox, simulator_url
):
    ws = await connect(alice)
    ack, first = await turn(ws, "question one")
    conversation, (question, reply) = ack["conversation"], ack["messages"]
    calls = await upstream_calls(simulator_url)

    again = frame("regenerate", conversation=conversation, reply=reply["id"])
    ack2, done = await acted(ws, again)

    # Only the new reply is announced, after the question; both replies are its versions.
    assert ack2["base"] == question["seq"]
    [new] = ack2["messages"]
    assert new["versions"] == [reply["id"], new["id"]]
    assert done["message"]["versions"] == [reply["id"], new["id"]]
    assert done["message"]["status"] == "complete"
    # Nobox was asked the same question again, without the first answer.
    assert await prompt_of_last_call(simulator_url) == [("user", "question one")]
    assert await upstream_calls(simulator_url) == calls + 1

    # The same frame resent (a double click, a reconnect): one reply, no second call.
    await ws.send_json_to(again)
    [dup] = [f for f in await frames_until(ws, "history") if f["type"] == "ack"]
    assert dup["duplicate"] is True and dup["messages"][0]["id"] == new["id"]
    assert await upstream_calls(simulator_url) == calls + 1
    count = await in_db_pool(Message.objects.filter(conversation__public_id=conversation).count)()
    assert count == 3
    await ws.disconnect()


@sockets_and_database
async def test_a_failed_reply_is_retried_in_place(alice, alice_token, nobox, simulator_url):
    ws = await connect(alice)
    ack, failed = await turn(ws, "try this", model="sim/server-error")
    assert failed["message"]["status"] == "error"
    retry = frame(
        "regenerate", conversation=ack["conversation"], reply=ack["messages"][1]["id"]
    ) | {"model": "sim/echo"}
    ack2, done = await acted(ws, retry)
    assert done["message"]["status"] == "complete" and "try this" in done["message"]["content"]
    assert done["message"]["versions"] == [ack["messages"][1]["id"], done["reply"]]
    await ws.disconnect()


@sockets_and_database
async def test_an_edit_branches_and_nobox_only_ever_sees_the_visible_branch(
    alice, alice_token, nobox, simulator_url
):
    ws = await connect(alice)
    ack1, done1 = await turn(ws, "first question")
    conversation = ack1["conversation"]
    ack2, done2 = await turn(ws, "second question", conversation)
    first = ack1["messages"][0]

    edit = send_frame("first, rephrased", conversation=conversation, edit=first["id"])
    ack3, done3 = await acted(ws, edit)
    # The new version replaces everything after the first message's parent (none: base 0).
    assert ack3["base"] == 0
    new_question, new_reply = ack3["messages"]
    assert new_question["versions"] == [first["id"], new_question["id"]]
    assert await prompt_of_last_call(simulator_url) == [("user", "first, rephrased")]

    # The next message follows the visible branch: the edited question and its reply.
    await turn(ws, "third question", conversation)
    assert await prompt_of_last_call(simulator_url) == [
        ("user", "first, rephrased"),
        ("assistant", done3["message"]["content"]),
        ("user", "third question"),
    ]

    # Switching back to the first version shows its branch, down its newest versions.
    await ws.send_json_to({"type": "switch", "conversation": conversation, "message": first["id"]})
    [history] = [f for f in await frames_until(ws, "history") if f["type"] == "history"]
    assert history["base"] == 0
    assert [m["content"] for m in history["messages"]] == [
        "first question",
        done1["message"]["content"],
        "second question",
        done2["message"]["content"],
    ]
    await turn(ws, "fourth question", conversation)
    assert [content for _, content in await prompt_of_last_call(simulator_url)] == [
        "first question",
        done1["message"]["content"],
        "second question",
        done2["message"]["content"],
        "fourth question",
    ]
    await ws.disconnect()


@sockets_and_database
async def test_an_edited_message_keeps_its_files_byte_for_byte(
    alice, alice_token, nobox, simulator_url
):
    ws = await connect(alice)
    files = [file_part("pixel.png", PNG), file_part("tone.wav", WAV), file_part("h.py", CODE)]
    ack, _ = await turn(ws, "what is this", attachments=files)
    original = ack["messages"][0]

    edit = send_frame(
        "what is this, exactly", conversation=ack["conversation"], edit=original["id"]
    )
    ack2, _ = await acted(ws, edit)
    [(role, content)] = await prompt_of_last_call(simulator_url)
    assert role == "user" and content == [
        {"type": "text", "text": "what is this, exactly"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(PNG)}"}},
        {"type": "input_audio", "input_audio": {"data": b64(WAV), "format": "wav"}},
        {"type": "text", "text": f"File h.py:\n\n{CODE.decode()}"},
    ]
    # The new version owns copies: deleting one message's files never takes the other's.
    edited_files = ack2["messages"][0]["attachments"]
    assert {f["id"] for f in edited_files}.isdisjoint({f["id"] for f in original["attachments"]})
    names = await in_db_pool(
        lambda: list(Attachment.objects.values_list("stored_name", flat=True))
    )()
    assert len(set(names)) == 6
    assert all(default_storage.exists(name) for name in names)
    await ws.disconnect()


@sockets_and_database
async def test_new_versions_and_switching_wait_for_a_running_reply(
    alice, alice_token, nobox, simulator_url
):
    ws = await connect(alice)
    ack, _ = await turn(ws, "settled")
    conversation, (question, reply) = ack["conversation"], ack["messages"]
    await ws.send_json_to(send_frame("long one", model="sim/long", conversation=conversation))
    await frames_until(ws, "delta")
    calls = await upstream_calls(simulator_url)

    attempts = [
        frame("regenerate", conversation=conversation, reply=reply["id"]),
        send_frame("edited", conversation=conversation, edit=question["id"]),
        {"type": "switch", "conversation": conversation, "message": question["id"]},
    ]
    for attempt in attempts:
        await ws.send_json_to(attempt)
        [error] = [f for f in await frames_until(ws, "error") if f["type"] == "error"]
        assert error["code"] == "busy", attempt
    assert await upstream_calls(simulator_url) == calls
    stored = await in_db_pool(Message.objects.filter(conversation__public_id=conversation).count)()
    assert stored == 4  # two turns, nothing from the refused frames
    await ws.send_json_to({"type": "stop", "conversation": conversation})
    await frames_until(ws, "done")
    await ws.disconnect()


@sockets_and_database
@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({"edit": "nosuchmessage"}, "not_found"),
        ({"parent": "nosuchmessage"}, "not_found"),
        ({"edit": "x", "parent": "y"}, "invalid"),
        ({"edit": "x", "attachments": [file_part("a.txt", b"hi")]}, "invalid"),
        ({"edit": "<reply>"}, "not_found"),  # an edit names a user message
    ],
)
async def test_bad_places_in_the_tree_are_refused_and_store_nothing(
    alice, alice_token, nobox, extra, code
):
    ws = await connect(alice)
    ack, _ = await turn(ws, "hello")
    extra = {k: ack["messages"][1]["id"] if v == "<reply>" else v for k, v in extra.items()}
    await ws.send_json_to(send_frame("more", conversation=ack["conversation"], **extra))
    [error] = [f for f in await frames_until(ws, "error") if f["type"] == "error"]
    assert error["code"] == code
    assert await in_db_pool(Message.objects.count)() == 2
    await ws.disconnect()


@sockets_and_database
async def test_another_users_messages_cannot_be_branched_from(
    alice, alice_token, bob, bob_token, nobox
):
    alice_ws, bob_ws = await connect(alice), await connect(bob)
    ack, _ = await turn(alice_ws, "alice's")
    theirs = ack["messages"][1]["id"]
    bob_ack, _ = await turn(bob_ws, "bob's")
    for attempt in [
        frame("regenerate", conversation=bob_ack["conversation"], reply=theirs),
        frame("regenerate", conversation=ack["conversation"], reply=theirs),
        {"type": "switch", "conversation": bob_ack["conversation"], "message": theirs},
        send_frame("x", conversation=bob_ack["conversation"], parent=theirs),
        send_frame("x", conversation=bob_ack["conversation"], edit=ack["messages"][0]["id"]),
    ]:
        await bob_ws.send_json_to(attempt)
        [error] = [f for f in await frames_until(bob_ws, "error") if f["type"] == "error"]
        assert error["code"] == "not_found"
    assert await in_db_pool(Message.objects.count)() == 4
    await alice_ws.disconnect()
    await bob_ws.disconnect()


@sockets_and_database
async def test_every_tab_follows_a_switch_and_a_reconnect_resumes_on_the_new_branch(
    alice, alice_token, nobox
):
    tab1, tab2 = await connect(alice), await connect(alice)
    ack, done = await turn(tab1, "one")
    conversation, reply = ack["conversation"], ack["messages"][1]
    await tab2.send_json_to({"type": "subscribe", "conversation": conversation})
    await frames_until(tab2, "history")
    regenerated = await acted(
        tab1, frame("regenerate", conversation=conversation, reply=reply["id"])
    )
    new_reply = regenerated[1]["message"]
    await frames_until(tab2, "done")  # tab 2 saw the new version stream

    await tab1.send_json_to(
        {"type": "switch", "conversation": conversation, "message": reply["id"]}
    )
    for tab in (tab1, tab2):
        [history] = [f for f in await frames_until(tab, "history") if f["type"] == "history"]
        assert history["base"] == 1 and [m["id"] for m in history["messages"]] == [reply["id"]]

    # A page that held the newer version (seq 3) reconnects: told to keep only up to message 1.
    tab3 = await connect(alice)
    await tab3.send_json_to(
        {"type": "subscribe", "conversation": conversation, "after_seq": new_reply["seq"]}
    )
    [history] = [f for f in await frames_until(tab3, "history") if f["type"] == "history"]
    assert history["base"] == 1 and [m["id"] for m in history["messages"]] == [reply["id"]]
    for tab in (tab1, tab2, tab3):
        await tab.disconnect()


@sockets_and_database
async def test_the_page_and_older_pages_show_the_visible_branch(alice, alice_token, nobox, client):
    ws = await connect(alice)
    ack, _ = await turn(ws, "root")
    conversation = ack["conversation"]
    await acted(ws, frame("regenerate", conversation=conversation, reply=ack["messages"][1]["id"]))
    await ws.disconnect()

    await in_db_pool(client.force_login)(alice)
    page = await in_db_pool(lambda: client.get(f"/c/{conversation}/"))()
    shown = page_data(page)["messages"]
    assert [m["seq"] for m in shown] == [1, 3]
    assert shown[1]["versions"] == [ack["messages"][1]["id"], shown[1]["id"]]
    older = await in_db_pool(lambda: client.get(f"/c/{conversation}/messages?before=3"))()
    assert [m["seq"] for m in older.json()["messages"]] == [1]
    assert await in_db_pool(lambda: Conversation.objects.get(public_id=conversation).branched)()


@sockets_and_database
async def test_following_the_last_message_shown_is_no_branch(alice, alice_token, nobox):
    ws = await connect(alice)
    ack, done = await turn(ws, "one")
    conversation = ack["conversation"]
    with_file = [file_part("notes.txt", b"plain notes")]  # a send that is stored on its own
    await turn(ws, "two", conversation, parent=done["reply"], attachments=with_file)
    stored = await in_db_pool(Conversation.objects.get)(public_id=conversation)
    assert not stored.branched and stored.leaf_seq is None
    await ws.disconnect()


@sockets_and_database
async def test_regenerating_a_reply_without_a_question_is_refused(alice, alice_token, nobox):
    # An imported conversation may start with a reply: there is nothing to ask again.
    from chat.conversation_export import import_json

    body = {
        "format": "noboxweb.conversation",
        "version": 1,
        "messages": [{"role": "assistant", "content": "Hello, I start."}],
    }
    imported = await in_db_pool(import_json)(alice, json.dumps(body).encode())
    reply = await Message.objects.aget(conversation=imported)
    ws = await connect(alice)
    await ws.send_json_to(
        frame("regenerate", conversation=imported.public_id, reply=reply.public_id)
    )
    [error] = [f for f in await frames_until(ws, "error") if f["type"] == "error"]
    assert error["code"] == "not_found"
    assert await in_db_pool(Message.objects.count)() == 1
    await ws.disconnect()
