"""The hub and a socket's relay, with a generation standing in for Nobox: gaps, a socket that
falls behind, switching conversations, lost `done`s. Real consumer, real hub, real database."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from channels.testing import WebsocketCommunicator

from chat.database import in_db_pool
from chat.models import Conversation, Message, User
from chat.replies import events
from chat.replies.hub import get_hub
from tests.protocol import streamed_text
from tests.ws import connect, frames_until

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class StandInGeneration:
    """A reply being written in this process, with text the test decides."""

    reply_id: str
    conversation_id: str
    text: str = ""
    stopped: bool = False

    def stop(self) -> None:
        self.stopped = True

    def published_text(self) -> str:
        return self.text


@in_db_pool
def streaming_reply(owner: User, content: str = "") -> tuple[str, str]:
    conversation = Conversation.objects.create(owner=owner, title="t", next_seq=3)
    Message.objects.create(conversation=conversation, seq=1, role="user", content="hi")
    reply = Message.objects.create(
        conversation=conversation, seq=2, role="assistant", status="streaming", content=content
    )
    return conversation.public_id, reply.public_id


@in_db_pool
def finish(reply_id: str, text: str) -> events.DoneEvent:
    Message.objects.filter(public_id=reply_id).update(content=text, status="complete")
    return events.done(Message.objects.get(public_id=reply_id).to_wire())


async def watching(alice: User, conversation: str) -> WebsocketCommunicator:
    ws = await connect(alice)
    await ws.send_json_to({"type": "subscribe", "conversation": conversation})
    return ws


async def test_a_late_joiner_gets_the_text_so_far_from_this_processs_generation(alice):
    conversation, reply = await streaming_reply(alice, content="stale checkpoint")
    hub = await get_hub()
    generation = StandInGeneration(reply, conversation, text="the text so far")
    await hub.register(generation)
    ws = await watching(alice, conversation)
    frames = await frames_until(ws, "snapshot")
    assert frames[-1] == {"type": "snapshot", "reply": reply, "text": "the text so far"}
    hub.unregister(generation)
    await ws.disconnect()


async def test_a_gap_is_filled_from_a_snapshot_with_no_duplicate(alice):
    conversation, reply = await streaming_reply(alice)
    hub = await get_hub()
    generation = StandInGeneration(reply, conversation, text="abc")
    await hub.register(generation)
    ws = await watching(alice, conversation)
    await frames_until(ws, "snapshot")

    # "def" is lost on its way; "ghi" arrives after a hole.
    generation.text = "abcdefghi"
    hub.publish(conversation, events.delta(reply, 6, "ghi"))
    # The held piece is not sent across the hole; the snapshot it asked for fills the hole and
    # covers it, so the page gets exactly the missing text, once.
    assert await ws.receive_json_from(timeout=5) == {
        "type": "delta",
        "reply": reply,
        "offset": 3,
        "text": "defghi",
    }
    assert await ws.receive_nothing(timeout=0.3)
    hub.unregister(generation)
    await ws.disconnect()


async def test_a_socket_that_falls_behind_is_resynchronised_not_skipped(alice, settings):
    settings.SOCKET_QUEUE_FRAMES = 10
    conversation, reply = await streaming_reply(alice)
    hub = await get_hub()
    generation = StandInGeneration(reply, conversation)
    await hub.register(generation)
    ws = await watching(alice, conversation)
    frames = await frames_until(ws, "snapshot")

    # Fifty pieces with no chance for the socket to write in between.
    for i in range(50):
        piece = f"<{i}>"
        hub.publish(conversation, events.delta(reply, len(generation.text), piece))
        generation.text += piece
    await asyncio.sleep(0.2)  # the final write
    hub.publish(conversation, await finish(reply, generation.text))
    frames += await frames_until(ws, "done")

    assert streamed_text(frames, reply) == generation.text
    deltas = [f for f in frames if f["type"] == "delta"]
    assert len(deltas) < 50, "nothing was dropped: the socket never fell behind"
    hub.unregister(generation)
    await ws.disconnect()


async def test_a_socket_that_switched_conversation_hears_nothing_more_of_the_old_one(alice):
    old, reply = await streaming_reply(alice)
    new = await in_db_pool(Conversation.objects.create)(owner=alice, title="new")
    hub = await get_hub()
    generation = StandInGeneration(reply, old, text="old text")
    await hub.register(generation)
    ws = await watching(alice, old)
    await frames_until(ws, "snapshot")
    await ws.send_json_to({"type": "subscribe", "conversation": new.public_id})
    await frames_until(ws, "history")

    hub.publish(old, events.delta(reply, 8, " more"))
    hub.publish(old, await finish(reply, "old text more"))
    assert await ws.receive_nothing(timeout=0.5)
    hub.unregister(generation)
    await ws.disconnect()


async def test_a_socket_that_missed_done_gets_it_from_the_database(alice, settings):
    settings.RELAY_SILENCE_CHECK = 0.5
    settings.RELAY_WATCHDOG_INTERVAL = 0.2
    conversation, reply = await streaming_reply(alice)
    hub = await get_hub()
    generation = StandInGeneration(reply, conversation, text="all of it")
    await hub.register(generation)
    ws = await watching(alice, conversation)
    await frames_until(ws, "snapshot")
    # The reply now runs "elsewhere" (unknown to this hub), ends, and its `done` is lost.
    hub.unregister(generation)
    await finish(reply, "all of it")

    frames = await frames_until(ws, "done", timeout=10)
    assert frames[-1]["message"]["status"] == "complete"
    assert frames[-1]["message"]["content"] == "all of it"
    await ws.disconnect()


async def test_stop_reaches_the_generation_of_this_process(alice):
    conversation, reply = await streaming_reply(alice)
    hub = await get_hub()
    generation = StandInGeneration(reply, conversation)
    await hub.register(generation)
    ws = await watching(alice, conversation)
    await frames_until(ws, "history")
    await ws.send_json_to({"type": "stop", "conversation": conversation})
    for _ in range(50):
        if generation.stopped:
            break
        await asyncio.sleep(0.02)
    assert generation.stopped
    hub.unregister(generation)
    await ws.disconnect()


async def test_deltas_waiting_in_a_row_go_out_as_one_frame(alice):
    conversation, reply = await streaming_reply(alice)
    hub = await get_hub()
    generation = StandInGeneration(reply, conversation)
    await hub.register(generation)
    ws = await watching(alice, conversation)
    frames = await frames_until(ws, "snapshot")
    joined = len(frames)

    for i in range(30):  # faster than the socket can write: they wait in its queue
        piece = f"[{i}]"
        hub.publish(conversation, events.delta(reply, len(generation.text), piece))
        generation.text += piece
    while streamed_text(frames, reply) != generation.text:
        frames.append(await ws.receive_json_from(timeout=5))
    assert len(frames) - joined < 30, "every delta went out on its own"
    hub.unregister(generation)
    await ws.disconnect()


async def test_a_sync_asked_before_the_generation_registered_is_answered_when_it_does(alice):
    conversation, reply = await streaming_reply(alice, content="stale checkpoint")
    hub = await get_hub()
    ws = await watching(alice, conversation)
    await frames_until(ws, "history")  # the sync went out with no generation here yet
    generation = StandInGeneration(reply, conversation, text="live text")
    await hub.register(generation)
    # Well before the 3 s fallback to the database checkpoint.
    assert await ws.receive_json_from(timeout=1) == {
        "type": "snapshot",
        "reply": reply,
        "text": "live text",
    }
    hub.unregister(generation)
    await ws.disconnect()
