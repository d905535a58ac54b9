"""The hub and a socket's relay, with a generation standing in for Nobox: gaps, a socket that
falls behind, switching conversations, lost `done`s. Real consumer, real hub, real database."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator

from chat.database import in_db_pool
from chat.models import Conversation, Message, User
from chat.replies import events
from chat.replies.hub import Hub, get_hub
from tests.protocol import streamed_text
from tests.rows import streaming_reply
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
def finish(reply_id: str, text: str) -> events.DoneEvent:
    Message.objects.filter(public_id=reply_id).update(content=text, status="complete")
    return events.done(Message.objects.get(public_id=reply_id).to_wire())


async def watching(alice: User, conversation: str) -> WebsocketCommunicator:
    ws = await connect(alice)
    await ws.send_json_to({"type": "subscribe", "conversation": conversation})
    return ws


@dataclass
class Watched:
    """A streaming reply of this process's stand-in generation, and a socket watching it."""

    hub: Hub
    generation: StandInGeneration
    ws: WebsocketCommunicator
    frames: list[dict[str, Any]]  # what the socket got on joining

    @property
    def conversation(self) -> str:
        return self.generation.conversation_id

    @property
    def reply(self) -> str:
        return self.generation.reply_id

    def publish_pieces(self, pieces: list[str]) -> None:
        """Publish each piece at once, one after the other, as a fast model would."""
        for piece in pieces:
            offset = len(self.generation.text)
            self.hub.publish(self.conversation, events.delta(self.reply, offset, piece))
            self.generation.text += piece


Watch = Callable[..., Awaitable[Watched]]


@pytest.fixture
async def watch(alice: User) -> AsyncIterator[Watch]:
    """Starts a stand-in reply (registered unless `register=False`) and a socket subscribed to
    it, read up to `until`; unregisters and disconnects everything afterwards."""
    started: list[Watched] = []

    async def start(
        text: str = "", checkpoint: str = "", until: str = "snapshot", register: bool = True
    ) -> Watched:
        row = await streaming_reply(alice, content=checkpoint)
        conversation = row.conversation.public_id
        hub = await get_hub()
        generation = StandInGeneration(row.public_id, conversation, text=text)
        if register:
            await hub.register(generation)
        ws = await watching(alice, conversation)
        watched = Watched(hub, generation, ws, await frames_until(ws, until))
        started.append(watched)
        return watched

    yield start
    for watched in started:
        watched.hub.unregister(watched.generation)
        await watched.ws.disconnect()


async def test_a_late_joiner_gets_the_text_so_far_from_this_processs_generation(watch):
    w = await watch(text="the text so far", checkpoint="stale checkpoint")
    assert w.frames[-1] == {"type": "snapshot", "reply": w.reply, "text": "the text so far"}


async def test_a_gap_is_filled_from_a_snapshot_with_no_duplicate(watch):
    w = await watch(text="abc")
    # "def" is lost on its way; "ghi" arrives after a hole.
    w.generation.text = "abcdefghi"
    w.hub.publish(w.conversation, events.delta(w.reply, 6, "ghi"))
    # The held piece is not sent across the hole; the snapshot it asked for fills the hole and
    # covers it, so the page gets exactly the missing text, once.
    assert await w.ws.receive_json_from(timeout=5) == {
        "type": "delta",
        "reply": w.reply,
        "offset": 3,
        "text": "defghi",
    }
    assert await w.ws.receive_nothing(timeout=0.3)


async def test_a_socket_that_falls_behind_is_resynchronised_not_skipped(watch, settings):
    settings.SOCKET_QUEUE_FRAMES = 10
    w = await watch()
    w.publish_pieces([f"<{i}>" for i in range(50)])  # no chance for the socket to write
    await asyncio.sleep(0.2)  # the final write
    w.hub.publish(w.conversation, await finish(w.reply, w.generation.text))
    frames = w.frames + await frames_until(w.ws, "done")

    assert streamed_text(frames, w.reply) == w.generation.text
    deltas = [f for f in frames if f["type"] == "delta"]
    assert len(deltas) < 50, "nothing was dropped: the socket never fell behind"


async def test_a_socket_that_switched_conversation_hears_nothing_more_of_the_old_one(watch, alice):
    w = await watch(text="old text")
    new = await in_db_pool(Conversation.objects.create)(owner=alice, title="new")
    await w.ws.send_json_to({"type": "subscribe", "conversation": new.public_id})
    await frames_until(w.ws, "history")

    w.hub.publish(w.conversation, events.delta(w.reply, 8, " more"))
    w.hub.publish(w.conversation, await finish(w.reply, "old text more"))
    assert await w.ws.receive_nothing(timeout=0.5)


async def test_a_socket_that_missed_done_gets_it_from_the_database(watch, settings):
    settings.RELAY_SILENCE_CHECK = 0.5
    settings.RELAY_WATCHDOG_INTERVAL = 0.2
    w = await watch(text="all of it")
    # The reply now runs "elsewhere" (unknown to this hub), ends, and its `done` is lost.
    w.hub.unregister(w.generation)
    await finish(w.reply, "all of it")

    frames = await frames_until(w.ws, "done", timeout=10)
    assert frames[-1]["message"]["status"] == "complete"
    assert frames[-1]["message"]["content"] == "all of it"


async def test_stop_reaches_the_generation_of_this_process(watch):
    w = await watch(until="history")
    await w.ws.send_json_to({"type": "stop", "conversation": w.conversation})
    for _ in range(50):
        if w.generation.stopped:
            break
        await asyncio.sleep(0.02)
    assert w.generation.stopped


async def test_deltas_waiting_in_a_row_go_out_as_one_frame(watch):
    w = await watch()
    frames = list(w.frames)
    w.publish_pieces([f"[{i}]" for i in range(30)])  # faster than the socket can write
    while streamed_text(frames, w.reply) != w.generation.text:
        frames.append(await w.ws.receive_json_from(timeout=5))
    assert len(frames) - len(w.frames) < 30, "every delta went out on its own"


async def test_a_sync_asked_before_the_generation_registered_is_answered_when_it_does(watch):
    # The socket's sync goes out while no generation here has the reply yet.
    w = await watch(
        text="live text", checkpoint="stale checkpoint", until="history", register=False
    )
    await w.hub.register(w.generation)
    # Well before the 3 s fallback to the database checkpoint.
    assert await w.ws.receive_json_from(timeout=1) == {
        "type": "snapshot",
        "reply": w.reply,
        "text": "live text",
    }


async def test_events_while_a_socket_starts_watching_wait_for_its_state(alice):
    """What happens between watching and reading the state must not reach the page before the
    state does (the state then replaces the text the page has): it is held, then relayed."""
    from chat.replies.feed import Feed

    row = await streaming_reply(alice, content="")
    conversation = row.conversation.public_id
    hub = await get_hub()
    generation = StandInGeneration(row.public_id, conversation)
    await hub.register(generation)
    sent: list[dict[str, Any]] = []

    async def send(text: str) -> None:
        sent.append(json.loads(text))

    feed = Feed(hub, send)
    try:
        await feed.watch(conversation, state_follows=True)
        # The reply goes on meanwhile (another process's, say): a piece is published.
        generation.text = "early text"
        hub.publish(conversation, events.delta(row.public_id, 0, "early text"))
        await asyncio.sleep(0.05)
        assert sent == [], "an event reached the page before its state"

        await feed.send_state(conversation, 0)
        while not any(f["type"] == "snapshot" for f in sent):
            await asyncio.sleep(0.01)
        kinds = [f["type"] for f in sent]
        assert kinds[0] == "history"
        assert {"type": "snapshot", "reply": row.public_id, "text": "early text"} in sent
        assert "delta" not in kinds[: kinds.index("snapshot")]
    finally:
        feed.close()
        hub.unregister(generation)
