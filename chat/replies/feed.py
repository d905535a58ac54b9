"""What one socket is sent: the watched conversation's events, relayed with no gap and no
duplicate, through a bounded outbox that one writer task drains.

The hub calls `on_event` directly for every event of the watched conversation (no channel
layer); the per-reply `RelayCursor`s decide what this socket still needs.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from chat import branches
from chat.database import in_db_pool
from chat.models import Conversation, Message, WireMessage
from chat.replies import events
from chat.replies.events import ConversationEvent, Frame
from chat.replies.hub import Hub
from chat.replies.relay import Piece, RelayCursor, Snapshot

log = logging.getLogger(__name__)


@dataclass
class Queued:
    """A frame waiting for the writer. For a delta, `reply`, `offset` and `piece` let the writer
    merge it with the next ones, and let a socket that fell behind drop it and catch up from a
    snapshot."""

    text: str
    reply: str | None = None
    offset: int = 0
    piece: str = ""
    # The conversation the frame is about (None: about the socket, e.g. `ack`, `error`, `pong`).
    conversation: str | None = None


class Feed:
    def __init__(self, hub: Hub, send: Callable[[str], Awaitable[None]]) -> None:
        self.hub = hub
        self.conversation: str | None = None
        self.cursors: dict[str, RelayCursor] = {}
        self._send = send
        self._outbox: deque[Queued] = deque()
        self._outbox_limit = settings.SOCKET_QUEUE_FRAMES  # read once: settings is a lazy proxy
        self._wake = asyncio.Event()
        self._loading: list[tuple[ConversationEvent, str]] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writer = asyncio.create_task(self._write_forever(), name="socket writer")

    def close(self) -> None:
        if self.conversation is not None:
            self.hub.unwatch(self.conversation, self)
        self._writer.cancel()
        for task in self._tasks:
            task.cancel()

    # --- what the socket watches ---------------------------------------------------------------

    async def watch(self, conversation: str, *, state_follows: bool = False) -> None:
        """Follow `conversation`. With `state_follows` (the caller sends its state next), events
        are held from now on, not from `send_state`: one relayed while the watch is being set
        up would reach the page before the state that then replaces its text."""
        if self.conversation is not None:
            self.hub.unwatch(self.conversation, self)
        self.conversation = conversation
        self.cursors = {}
        # Frames of the old conversation still queued are not for this page any more.
        self._outbox = deque(item for item in self._outbox if item.conversation is None)
        if state_follows:
            self._loading = []
        try:
            await self.hub.watch(conversation, self)
        except BaseException:
            self._loading = None  # no state will follow: nothing must stay held
            raise

    async def send_state(self, conversation: str, after_seq: int) -> None:
        """The visible branch after `after_seq` (or, when the page's `after_seq` is on another
        branch, after the last message both share: the frame's `base`), then its live reply.

        The socket already watches, so what happens during the read arrives as events: they are
        held until `history` is out, then relayed; each streaming reply restarts from a snapshot.
        """
        if self._loading is None:
            self._loading = []
        try:
            base, messages = await _messages_since(conversation, after_seq)
        except BaseException:
            self._loading = None
            raise
        self._queue_about(events.history_frame(conversation, base, messages))
        for message in messages:
            if message["status"] == Message.Status.STREAMING:
                self.cursors[message["id"]] = RelayCursor()
                self.hub.follow(message["id"], conversation, sync=True)
        held, self._loading = self._loading, None
        shown = {m["id"] for m in messages}
        for event, encoded in held:
            if event["type"] == "started" and all(m["id"] in shown for m in event["messages"]):
                continue  # already in history
            self.on_event(event, encoded)

    # --- events from the hub (called in the event loop; never blocks) --------------------------

    def on_event(self, event: ConversationEvent, encoded: str) -> None:
        if self._loading is not None:
            self._loading.append((event, encoded))
            return
        if event["type"] == "started":
            self._on_started(event)
        elif event["type"] == "delta":
            cursor = self.cursors.get(event["reply"]) or self._adopt(event["reply"])
            piece = Piece(event["offset"], event["text"])
            self._relay(event["reply"], cursor, cursor.on_piece(piece), piece, encoded)
        elif event["type"] == "snapshot":
            waiting = self.cursors.get(event["reply"])
            if waiting is not None:
                self._relay(event["reply"], waiting, waiting.on_snapshot(event["text"]))
        elif event["type"] == "title":
            self._queue(Queued(encoded or json.dumps(event), conversation=self.conversation))
        elif event["type"] == "branch":
            self._reload(event["conversation"], event["base"])
        elif event["type"] == "done":
            # Sent whether or not this socket saw the reply stream: a swept reply is news too,
            # and the final message replaces whatever text the browser holds.
            self.cursors.pop(event["reply"], None)
            text = encoded or json.dumps(events.done_frame(event))
            self._queue(Queued(text, conversation=self.conversation))

    def _on_started(self, event: events.StartedEvent) -> None:
        for message in event["messages"]:
            if message["status"] == Message.Status.STREAMING:
                self.cursors.setdefault(message["id"], RelayCursor.from_start())
        frame = events.messages_frame(event["conversation"], event["base"], event["messages"])
        self._queue_about(frame)

    def _reload(self, conversation: str, base: int) -> None:
        """The conversation switched branches at `base`: send the new branch from there (no
        reply runs while one switches, so there is nothing live to follow)."""
        if self.conversation != conversation:
            return
        self._loading = self._loading if self._loading is not None else []
        self.spawn(self.send_state(conversation, base))

    def _adopt(self, reply_id: str) -> RelayCursor:
        """A delta of a reply this socket never heard start (its `started` was lost): announce
        the message from the database, then catch up from a snapshot."""
        cursor = self.cursors[reply_id] = RelayCursor()
        self.spawn(self._announce(reply_id))
        return cursor

    async def _announce(self, reply_id: str) -> None:
        found = await _message(reply_id)
        if found is None or self.conversation is None or self.cursors.get(reply_id) is None:
            return
        base, message = found
        self._queue_about(events.messages_frame(self.conversation, base, [message]))
        self.hub.follow(reply_id, self.conversation, sync=True)

    def _relay(
        self,
        reply_id: str,
        cursor: RelayCursor,
        outputs: list[Piece | Snapshot],
        received: Piece | None = None,
        encoded: str = "",
    ) -> None:
        at = self.conversation
        for output in outputs:
            if isinstance(output, Snapshot):
                fell_behind = self._queue_about(events.snapshot_frame(reply_id, output.text))
            elif output == received and encoded:
                # The event is the frame: encoded once for every socket.
                fell_behind = self._queue(Queued(encoded, reply_id, output.offset, output.text, at))
            else:
                text = json.dumps(events.delta_frame(reply_id, output.offset, output.text))
                fell_behind = self._queue(Queued(text, reply_id, output.offset, output.text, at))
            if fell_behind:
                break  # the rest was computed before the rewind: the snapshot brings it
        if cursor.needs_sync and self.conversation is not None:
            self.hub.follow(reply_id, self.conversation, sync=True)

    # --- the outbox ----------------------------------------------------------------------------

    def queue_frame(self, frame: Frame) -> None:
        """Queue a frame about the socket itself (kept when it switches conversation)."""
        self._queue(Queued(json.dumps(frame)))

    def _queue_about(self, frame: Frame) -> bool:
        return self._queue(Queued(json.dumps(frame), conversation=self.conversation))

    def _queue(self, item: Queued) -> bool:
        """Queue a frame; True when that made the socket fall behind (deltas were dropped)."""
        self._outbox.append(item)
        fell_behind = len(self._outbox) > self._outbox_limit
        if fell_behind:
            self._fall_behind()
        self._wake.set()
        return fell_behind

    def _fall_behind(self) -> None:
        """The socket cannot keep up: drop its queued deltas and resynchronise each reply from a
        snapshot (one frame with all the text), rather than skip text or grow without bound."""
        dropped: dict[str, int] = {}
        kept: deque[Queued] = deque()
        for item in self._outbox:
            if item.reply is None:
                kept.append(item)
            elif item.reply not in dropped:
                dropped[item.reply] = item.offset
        log.warning("a socket fell %d frames behind; resynchronising it", len(self._outbox))
        self._outbox = kept
        for reply_id, offset in dropped.items():
            cursor = self.cursors.get(reply_id)
            if cursor is not None and self.conversation is not None:
                cursor.rewind(offset)
                self.hub.follow(reply_id, self.conversation, sync=True)

    async def _write_forever(self) -> None:
        while True:
            while self._outbox:
                await self._send(self._next_frame())
            self._wake.clear()
            await self._wake.wait()

    def _next_frame(self) -> str:
        """The next frame to write; deltas of one reply waiting in a row go out as one (a
        socket that is behind catches up with fewer, larger frames)."""
        first = self._outbox.popleft()
        if first.reply is None or not self._outbox or self._outbox[0].reply != first.reply:
            return first.text
        pieces, end = [first.piece], first.offset + len(first.piece)
        while self._outbox and self._outbox[0].reply == first.reply:
            if self._outbox[0].offset != end:
                break
            end += len(self._outbox[0].piece)
            pieces.append(self._outbox.popleft().piece)
        if len(pieces) == 1:
            return first.text
        return json.dumps(events.delta_frame(first.reply, first.offset, "".join(pieces)))

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run `work` for as long as this socket lives."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


@in_db_pool
def _messages_since(conversation_id: str, after_seq: int) -> tuple[int, list[WireMessage]]:
    """(base, the visible branch after it): base is `after_seq` when it is on the visible branch
    (a streaming reply always is), else the last message of it that `after_seq` follows."""
    # The conversation's row is read here, after the socket started watching, though callers
    # have just read it: a switch made in between changed its leaf, and its `branch` event
    # reached no socket of ours yet.
    conversation = Conversation.objects.filter(public_id=conversation_id).first()
    if conversation is None:
        return after_seq, []
    tree = branches.load(conversation)
    base = branches.base_for(tree, after_seq)
    return base, branches.wire(branches.visible_messages(conversation, tree, after=base), tree)


@in_db_pool
def _message(public_id: str) -> tuple[int, WireMessage] | None:
    """A message and the seq it follows (the `base` of a frame that brings it)."""
    message = Message.objects.filter(public_id=public_id).select_related("conversation").first()
    if message is None:
        return None
    tree = branches.load(message.conversation)
    return branches.base_of(message, tree), branches.wire([message], tree)[0]
