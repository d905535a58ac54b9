"""The viewer socket of a live share link, through the whole ASGI stack (origin check, session,
routing) against the real database, the in-process hub and the Nobox simulator."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.utils import timezone

from chat import sharing
from chat.database import in_db_pool
from chat.models import Conversation, Message, ShareLink, ShareSettings, User
from tests.protocol import Page, send_frame
from tests.ws import connect, frames_until

pytestmark = pytest.mark.django_db(transaction=True)

LINK_GONE = 4404
SIGNED_OUT = 4401


# --- helpers ------------------------------------------------------------------------------------


@in_db_pool
def finished_conversation(owner: User) -> Conversation:
    conversation = Conversation.objects.create(owner=owner, title="Shared", next_seq=3)
    Message.objects.create(conversation=conversation, seq=1, role="user", content="Hi")
    Message.objects.create(
        conversation=conversation, seq=2, role="assistant", content="Hello", model="sim/echo"
    )
    return conversation


@in_db_pool
def share(conversation: Conversation, kind: str = "live", **options: Any) -> str:
    return sharing.create_link(
        conversation.owner,
        conversation,
        kind=kind,
        expires_in=options.get("expires_in"),
        show_owner_name=False,
        show_cost=options.get("show_cost", False),
    ).token


@in_db_pool
def set_policy(anyone: bool) -> None:
    policy = ShareSettings.current()
    policy.audience = "anyone" if anyone else "members"
    policy.save()


@in_db_pool
def session_cookie(user: User) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def open_viewer(token: str, viewer: User | None) -> WebsocketCommunicator:
    """A viewer's socket, accepted (it may be closed at once: see `closed_with`)."""
    from noboxweb.asgi import application

    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
    if viewer is not None:
        headers.append((b"cookie", await session_cookie(viewer)))
    communicator = WebsocketCommunicator(application, f"/ws/share/{token}/", headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def viewer_socket(token: str, viewer: User | None) -> WebsocketCommunicator:
    communicator = await open_viewer(token, viewer)
    assert await communicator.receive_json_from(timeout=5) == {"type": "hello"}
    return communicator


async def closed_with(communicator: WebsocketCommunicator, timeout: float = 10.0) -> int:
    """The close code the server sends next (frames before it are skipped)."""
    while True:
        output = await communicator.receive_output(timeout=timeout)
        if output["type"] == "websocket.close":
            return int(output["code"])


async def upstream_calls(simulator_url: str) -> int:
    async with httpx.AsyncClient() as client:
        stats = (await client.get(simulator_url.removesuffix("/_f_") + "/_sim/stats")).json()
    return int(stats["chat_completions"])


# --- following a conversation ----------------------------------------------------------------


async def test_a_live_viewer_follows_a_reply_as_it_is_written(alice, alice_token, bob, nobox):
    conversation = await finished_conversation(alice)
    viewer = await viewer_socket(await share(conversation), bob)
    await viewer.send_json_to({"type": "subscribe", "after_seq": 0})
    history = await viewer.receive_json_from(timeout=5)
    assert history["type"] == "history"
    assert [m["content"] for m in history["messages"]] == ["Hi", "Hello"]

    owner = await connect(alice)
    await owner.send_json_to(send_frame("Tell me the long one", "sim/long", conversation.public_id))
    owner_frames = await frames_until(owner, "done", timeout=30)
    frames = await frames_until(viewer, "done", timeout=30)

    page = Page()
    for frame in frames:
        page.apply(frame)
    assert not page.problems, page.problems
    done = frames[-1]["message"]
    assert (
        done["status"] == "complete" and done["content"] == owner_frames[-1]["message"]["content"]
    )
    assert page.streamed[done["id"]] == done["content"], "the viewer saw every piece, once"
    assert sum(f["type"] == "delta" for f in frames) > 1, "the reply streamed to the viewer"
    # What the owner did not choose to show does not travel either.
    assert all("conversation" not in f for f in frames)
    assert done["cost"] is None and done["usage"] is None
    await owner.disconnect()
    await viewer.disconnect()


async def test_a_viewer_joining_mid_reply_gets_the_text_so_far_then_the_rest(
    alice, alice_token, bob, nobox
):
    conversation = await finished_conversation(alice)
    token = await share(conversation)
    owner = await connect(alice)
    await owner.send_json_to(send_frame("Long, please", "sim/long", conversation.public_id))
    owner_frames = await frames_until(owner, "delta", timeout=10)
    reply_id = next(f for f in owner_frames if f["type"] == "ack")["messages"][1]["id"]

    viewer = await viewer_socket(token, bob)
    await viewer.send_json_to({"type": "subscribe", "after_seq": 2})
    frames = await frames_until(viewer, "done", timeout=30)
    history = frames[0]
    assert history["type"] == "history"
    joined = {m["id"]: m for m in history["messages"]}
    assert joined[reply_id]["status"] == "streaming", "the viewer joined while it was written"
    page = Page()
    for frame in frames:
        page.apply(frame)
    assert not page.problems, page.problems
    assert page.snapshots.get(reply_id), "the viewer caught up from a snapshot"
    assert page.streamed[reply_id] == frames[-1]["message"]["content"]
    await frames_until(owner, "done", timeout=30)
    await owner.disconnect()
    await viewer.disconnect()


async def test_the_owner_may_show_the_cost_to_viewers(alice, alice_token, bob, nobox):
    conversation = await finished_conversation(alice)
    viewer = await viewer_socket(await share(conversation, show_cost=True), bob)
    await viewer.send_json_to({"type": "subscribe"})
    await frames_until(viewer, "history")
    owner = await connect(alice)
    await owner.send_json_to(send_frame("Hi again", "sim/echo", conversation.public_id))
    done = (await frames_until(viewer, "done", timeout=30))[-1]["message"]
    assert done["usage"] is not None and done["usage"]["total_tokens"] > 0
    await owner.disconnect()
    await viewer.disconnect()


# --- nothing can be written ---------------------------------------------------------------------


@in_db_pool
def everything(conversation: Conversation) -> list[Any]:
    return [
        list(Conversation.objects.values_list()),
        list(Message.objects.order_by("pk").values_list()),
        list(ShareLink.objects.values_list("revoked_at", "expires_at", "kind", "snapshot_seq")),
    ]


async def test_every_write_frame_is_refused_and_changes_nothing(alice, alice_token, bob, nobox):
    conversation = await finished_conversation(alice)
    viewer = await viewer_socket(await share(conversation), bob)
    before = await everything(conversation)
    calls = await upstream_calls(nobox)
    id_ = conversation.public_id
    attempts: list[tuple[Any, str]] = [
        (send_frame("via the link", "sim/echo", id_), "read_only"),
        (send_frame("a new chat", "sim/echo", None), "read_only"),
        ({"type": "stop", "conversation": id_}, "read_only"),
        ({"type": "rename", "conversation": id_, "title": "pwned"}, "read_only"),
        ({"type": "delete", "conversation": id_}, "read_only"),
        ({"type": "revoke"}, "read_only"),
        ({"type": "edit", "message": "x", "text": "y"}, "read_only"),
        ({"type": "regenerate", "conversation": id_}, "read_only"),
        ({"type": "Send", "text": "case"}, "read_only"),
        ({"type": 1}, "unknown_type"),
        ({}, "unknown_type"),
        ([{"type": "send"}], "bad_frame"),
        ("not json", "bad_frame"),
        ("x" * 5000, "too_large"),
    ]
    for frame, code in attempts:
        text = frame if isinstance(frame, str) else json.dumps(frame)
        await viewer.send_to(text_data=text)
        answer = await viewer.receive_json_from(timeout=5)
        assert (answer["type"], answer["code"]) == ("error", code), (frame, answer)
    await viewer.send_to(bytes_data=b'{"type": "send"}')
    assert (await viewer.receive_json_from(timeout=5))["code"] == "bad_frame"

    # Reading still works, and nothing changed anywhere.
    await viewer.send_json_to({"type": "ping"})
    assert await viewer.receive_json_from(timeout=5) == {"type": "pong"}
    assert await everything(conversation) == before
    assert await upstream_calls(nobox) == calls
    await viewer.disconnect()


async def test_a_flood_of_frames_is_rate_limited(alice, bob):
    conversation = await finished_conversation(alice)
    viewer = await viewer_socket(await share(conversation), bob)
    codes = set()
    for _ in range(40):
        await viewer.send_json_to({"type": "ping"})
        codes.add((await viewer.receive_json_from(timeout=5)).get("code"))
    assert "rate_limited" in codes
    await viewer.disconnect()


# --- who may open it, and closing it --------------------------------------------------------------


async def test_links_that_do_not_open_are_closed_with_4404(alice, bob):
    conversation = await finished_conversation(alice)
    snapshot = await share(conversation, kind="snapshot")
    for token in (snapshot, "no-such-token", "x" * 43):
        assert await closed_with(await open_viewer(token, bob)) == LINK_GONE


@pytest.mark.parametrize("anyone", [True, False])
async def test_who_may_follow_a_link_is_the_admins_choice(alice, bob, anyone):
    await set_policy(anyone)
    token = await share(await finished_conversation(alice))
    member = await viewer_socket(token, bob)  # a member, under both policies
    await member.disconnect()
    stranger = await open_viewer(token, None)
    if anyone:
        assert await stranger.receive_json_from(timeout=5) == {"type": "hello"}
        await stranger.send_json_to({"type": "subscribe"})
        assert (await stranger.receive_json_from(timeout=5))["type"] == "history"
        await stranger.disconnect()
    else:
        assert await closed_with(stranger) == SIGNED_OUT
        # ... whether or not the link exists.
        assert await closed_with(await open_viewer("no-such-token", None)) == SIGNED_OUT


async def test_making_links_members_only_closes_strangers_viewers_at_once(alice, bob):
    await set_policy(True)
    token = await share(await finished_conversation(alice))
    stranger = await viewer_socket(token, None)
    member = await viewer_socket(token, bob)
    await set_policy(False)
    assert await closed_with(stranger) == SIGNED_OUT
    await member.send_json_to({"type": "ping"})
    assert await member.receive_json_from(timeout=5) == {"type": "pong"}, "members stay"
    await member.disconnect()


async def test_deactivating_the_owner_closes_their_links_viewers(alice, bob):
    from chat.sign_out import deactivate_user

    token = await share(await finished_conversation(alice))
    viewer = await viewer_socket(token, bob)
    await in_db_pool(deactivate_user)(alice, None)
    assert await closed_with(viewer) == LINK_GONE


@pytest.mark.parametrize("anyone", [True, False])
async def test_a_viewer_who_signs_out_keeps_following_only_where_anyone_may(alice, bob, anyone):
    from chat.sign_out import sign_out_everywhere

    await set_policy(anyone)
    viewer = await viewer_socket(await share(await finished_conversation(alice)), bob)
    await in_db_pool(sign_out_everywhere)(bob)
    if anyone:
        await viewer.send_json_to({"type": "ping"})
        assert await viewer.receive_json_from(timeout=5) == {"type": "pong"}
        await viewer.disconnect()
    else:
        assert await closed_with(viewer) == SIGNED_OUT


async def test_revoking_closes_an_open_viewer_at_once(alice, bob):
    token = await share(await finished_conversation(alice))
    viewer = await viewer_socket(token, bob)
    link = await ShareLink.objects.select_related("owner", "conversation").aget()
    assert await in_db_pool(sharing.revoke_link)(link, alice)
    assert await closed_with(viewer) == LINK_GONE
    assert await closed_with(await open_viewer(token, bob)) == LINK_GONE


async def test_expiry_closes_an_open_viewer(alice, bob):
    token = await share(await finished_conversation(alice), expires_in=timedelta(hours=1))
    viewer = await viewer_socket(token, bob)
    # The link expires while the viewer's socket is open (its timer was set for an hour: this
    # one opens after the change and is closed when its time comes).
    await ShareLink.objects.aupdate(expires_at=timezone.now() + timedelta(seconds=1))
    late = await viewer_socket(token, bob)
    assert await closed_with(late) == LINK_GONE
    # The first viewer is told by its next subscribe, whatever its timer says.
    await viewer.send_json_to({"type": "subscribe"})
    assert await closed_with(viewer) == LINK_GONE


@pytest.mark.parametrize("how", ["by its owner (undo window)", "for good (purge)"])
async def test_deleting_the_conversation_closes_its_viewers(alice, bob, how):
    from chat import conversations

    conversation = await finished_conversation(alice)
    viewer = await viewer_socket(await share(conversation), bob)
    if how.startswith("by its owner"):
        await in_db_pool(conversations.delete)(alice, conversation.public_id)
    else:
        await Conversation.objects.filter(pk=conversation.pk).adelete()
    assert await closed_with(viewer) == LINK_GONE
