"""The chat WebSocket (docs/protocol.md): translates browser frames to the reply workflow, and
relays the watched conversation's events to the browser with no gap and no duplicate.

The hub calls `on_event` directly for every event (no channel layer); the per-reply
`RelayCursor`s decide what this socket still needs, and one writer task sends the queued frames.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
from django.db.models import Q
from django.utils.crypto import constant_time_compare

from chat.access import NotFound, conversation_for
from chat.database import in_db_pool
from chat.frames import FrameError, decode_frame, frame_ref, optional_int, parse_send, required_id
from chat.models import Conversation, Message, User, WireMessage
from chat.ratelimit import TokenBucket
from chat.replies import events, generation
from chat.replies.events import ConversationEvent, Frame
from chat.replies.hub import Hub, get_hub
from chat.replies.relay import Piece, RelayCursor, Snapshot
from chat.replies.sweep import ensure_sweeper
from chat.replies.turns import Refused, store_turn

log = logging.getLogger(__name__)


@dataclass
class Queued:
    """A frame waiting for the writer; `reply`/`offset` mark a delta that may be dropped and
    re-sent from a snapshot when the socket falls behind."""

    text: str
    reply: str | None = None
    offset: int = 0


class ChatConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    # Not on the channel layer at all: the hub feeds this socket, so no per-socket channel, no
    # receive loop to cancel, no per-event database-connection housekeeping.
    channel_layer_alias = "no channel layer"

    user: User
    user_pk: int
    session_key: str | None
    hub: Hub
    conversation: Conversation | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        hub = await get_hub()
        # Refusals accept, then close with the documented code: a handshake refusal reaches the
        # browser as a bare 1006 it would retry forever.
        if user is None or not user.is_authenticated:
            await self.accept()
            await self.close(code=events.CLOSE_SIGNED_OUT)
            return
        if hub.sockets_of(user.pk) >= settings.WS_MAX_SOCKETS_PER_USER:
            await self.accept()
            await self.close(code=events.CLOSE_TOO_MANY_SOCKETS)
            return
        self.user, self.user_pk = user, user.pk
        self.frame_budget = TokenBucket(settings.WS_FRAMES_PER_SECOND, settings.WS_FRAME_BURST)
        session = self.scope.get("session")
        self.session_key = getattr(session, "session_key", None)
        self.cursors: dict[str, RelayCursor] = {}
        self._outbox: deque[Queued] = deque()
        self._wake = asyncio.Event()
        self._loading: list[tuple[ConversationEvent, str]] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writer = asyncio.create_task(self._write_forever(), name="socket writer")
        self.hub = hub
        await self.hub.join_user(self)
        await self.accept()
        self._queue_frame(events.hello_frame())
        ensure_sweeper()

    async def disconnect(self, code: int) -> None:
        if not hasattr(self, "hub"):
            return  # refused before it was set up
        self.hub.leave_user(self)
        if self.conversation is not None:
            self.hub.unwatch(self.conversation.public_id, self)
        self._writer.cancel()
        for task in self._tasks:
            task.cancel()

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels' dispatch first closes stale database connections on asgiref's one shared
        # sync thread, for every message; our database work runs in chat.database's pool.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # --- browser frames ------------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        frame: dict[str, Any] = {}
        try:
            frame = decode_frame(text_data, bytes_data, settings.MAX_FRAME_BYTES)
            wait = self.frame_budget.take(time.monotonic())
            if wait:
                self._queue_frame(
                    events.error_frame(
                        "rate_limited",
                        "Too many frames at once: wait a moment.",
                        frame_ref(frame),
                        retry_after=round(wait, 2),
                    )
                )
                return
            refusal = await _signed_out_code(self.user_pk, self.session_key)
            if refusal is not None:
                await self.close(code=refusal)
                return
            await self._dispatch(frame)
        except FrameError as error:
            self._refuse(error.code, error.message, error.ref or frame_ref(frame))
        except Refused as refused:
            self._refuse(refused.code, refused.message, frame_ref(frame))

    async def _dispatch(self, frame: dict[str, Any]) -> None:
        handler = {
            "subscribe": self._on_subscribe,
            "send": self._on_send,
            "stop": self._on_stop,
            "ping": self._on_ping,
        }.get(frame["type"])
        if handler is None:
            raise FrameError("unknown_type", "Unknown frame type.")
        await handler(frame)

    async def _on_ping(self, frame: dict[str, Any]) -> None:
        self._queue_frame(events.pong_frame())

    async def _on_subscribe(self, frame: dict[str, Any]) -> None:
        conversation = await self._owned(required_id(frame, "conversation"))
        await self._watch(conversation)
        await self._send_state(conversation, optional_int(frame, "after_seq") or 0)

    async def _on_send(self, frame: dict[str, Any]) -> None:
        request = parse_send(frame)
        turn = await in_db_pool(store_turn)(self.user, request)
        if self.conversation is None or self.conversation.pk != turn.conversation.pk:
            await self._watch(turn.conversation)
        messages = [turn.user_message.to_wire(), turn.reply.to_wire()]
        self._queue_frame(
            events.ack_frame(
                request.client_id,
                turn.conversation.public_id,
                turn.conversation.display_title,
                turn.duplicate,
                messages,
            )
        )
        if turn.duplicate:
            await self._send_state(turn.conversation, turn.user_message.seq - 1)
        else:
            await generation.start(turn)

    async def _on_stop(self, frame: dict[str, Any]) -> None:
        conversation = await self._owned(required_id(frame, "conversation"))
        reply_id = await _streaming_reply(conversation.pk)
        if reply_id is None:
            raise Refused("not_running", "No reply is being written in this conversation.")
        self.hub.request_stop(reply_id)

    async def _owned(self, public_id: str) -> Conversation:
        try:
            conversation: Conversation = await in_db_pool(conversation_for)(self.user, public_id)
            return conversation
        except NotFound as exc:
            raise Refused("not_found", "No such conversation.") from exc

    # --- what this socket watches --------------------------------------------------------------

    async def _watch(self, conversation: Conversation) -> None:
        if self.conversation is not None:
            self.hub.unwatch(self.conversation.public_id, self)
        self.conversation = conversation
        self.cursors = {}
        # Events of the old conversation still queued are not for this page any more.
        self._outbox = deque(item for item in self._outbox if item.reply is None)
        await self.hub.watch(conversation.public_id, self)

    async def _send_state(self, conversation: Conversation, after_seq: int) -> None:
        """Messages after `after_seq` (and any still streaming), then the live replies.

        The socket already watches, so what happens during the read arrives as events: they are
        held until `history` is out, then relayed; each streaming reply restarts from a snapshot.
        """
        self._loading = []
        try:
            messages = await _messages_since(conversation.pk, after_seq)
        except BaseException:
            self._loading = None
            raise
        self._queue_frame(events.history_frame(conversation.public_id, messages))
        streaming = [m["id"] for m in messages if m["status"] == Message.Status.STREAMING]
        for reply_id in streaming:
            self.cursors[reply_id] = RelayCursor()
            self.hub.follow(reply_id, conversation.public_id, sync=True)
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
        elif event["type"] == "done":
            # Sent whether or not this socket saw the reply stream: a swept reply is news too,
            # and the final message replaces whatever text the browser holds.
            self.cursors.pop(event["reply"], None)
            self._queue(Queued(encoded or json.dumps(events.done_frame(event))))

    def on_sign_out(self, code: int) -> None:
        self._spawn(self.close(code=code))

    def _on_started(self, event: events.StartedEvent) -> None:
        for message in event["messages"]:
            if message["status"] == Message.Status.STREAMING:
                self.cursors.setdefault(message["id"], RelayCursor.from_start())
        self._queue_frame(events.messages_frame(event["conversation"], event["messages"]))

    def _adopt(self, reply_id: str) -> RelayCursor:
        """A delta of a reply this socket never heard start (its `started` was lost): announce
        the message from the database, then catch up from a snapshot."""
        cursor = self.cursors[reply_id] = RelayCursor()
        self._spawn(self._announce(reply_id))
        return cursor

    async def _announce(self, reply_id: str) -> None:
        message = await _message(reply_id)
        if message is None or self.conversation is None or self.cursors.get(reply_id) is None:
            return
        conversation = self.conversation.public_id
        self._queue_frame(events.messages_frame(conversation, [message]))
        self.hub.follow(reply_id, conversation, sync=True)

    def _relay(
        self,
        reply_id: str,
        cursor: RelayCursor,
        outputs: list[Piece | Snapshot],
        received: Piece | None = None,
        encoded: str = "",
    ) -> None:
        for output in outputs:
            if isinstance(output, Snapshot):
                self._queue_frame(events.snapshot_frame(reply_id, output.text))
            elif output == received and encoded:
                self._queue(Queued(encoded, reply_id, output.offset))  # the event is the frame
            else:
                frame = events.delta_frame(reply_id, output.offset, output.text)
                self._queue(Queued(json.dumps(frame), reply_id, output.offset))
        if cursor.needs_sync and self.conversation is not None:
            self.hub.follow(reply_id, self.conversation.public_id, sync=True)

    # --- the outbox ----------------------------------------------------------------------------

    def _queue_frame(self, frame: Frame) -> None:
        self._queue(Queued(json.dumps(frame)))

    def _queue(self, item: Queued) -> None:
        self._outbox.append(item)
        if len(self._outbox) > settings.SOCKET_QUEUE_FRAMES:
            self._fall_behind()
        self._wake.set()

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
                self.hub.follow(reply_id, self.conversation.public_id, sync=True)

    async def _write_forever(self) -> None:
        while True:
            while self._outbox:
                await self.send(text_data=self._outbox.popleft().text)
            self._wake.clear()
            await self._wake.wait()

    def _refuse(self, code: str, message: str, ref: dict[str, str]) -> None:
        self._queue_frame(events.error_frame(code, message, ref))

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


@in_db_pool
def _signed_out_code(user_pk: int, session_key: str | None) -> int | None:
    """None while the user is active and, for a socket opened by a session, that session still
    signs them in (not logged out, not invalidated by a password change); else the close code."""
    user = User.objects.filter(pk=user_pk, is_active=True).first()
    if user is None:
        return events.CLOSE_DEACTIVATED
    if session_key is None:
        return None
    data = import_module(settings.SESSION_ENGINE).SessionStore(session_key).load()
    signed_in = str(data.get(SESSION_KEY)) == str(user_pk) and constant_time_compare(
        data.get(HASH_SESSION_KEY, ""), user.get_session_auth_hash()
    )
    return None if signed_in else events.CLOSE_SIGNED_OUT


@in_db_pool
def _messages_since(conversation_pk: int, after_seq: int) -> list[WireMessage]:
    return [
        message.to_wire()
        for message in Message.objects.filter(conversation_id=conversation_pk)
        .filter(Q(seq__gt=after_seq) | Q(status=Message.Status.STREAMING))
        .order_by("seq")
    ]


@in_db_pool
def _streaming_reply(conversation_pk: int) -> str | None:
    return (
        Message.objects.streaming()
        .filter(conversation_id=conversation_pk)
        .values_list("public_id", flat=True)
        .first()
    )


@in_db_pool
def _message(public_id: str) -> WireMessage | None:
    message = Message.objects.filter(public_id=public_id).first()
    return message.to_wire() if message is not None else None
