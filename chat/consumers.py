"""The chat WebSocket: translates frames (docs/protocol.md) to the reply workflow and relays the
conversation's events to the browser with no gap and no duplicate."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.db.models import Q

from chat import replies
from chat.access import NotFound, conversation_for
from chat.accounts import user_group
from chat.asyncdb import db_sync
from chat.frames import FrameError, optional_int, parse_send, required_id
from chat.models import Conversation, Message, User

# How long to wait for the generating process to answer a `sync` before trusting the database.
SNAPSHOT_FALLBACK_SECONDS = 3.0


@dataclass
class ReplyView:
    """What this socket has sent of one streaming reply."""

    sent: int | None = 0  # characters sent so far; None while waiting for a snapshot
    buffered: list[tuple[int, str]] = field(default_factory=list)


class ChatConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    user: User
    conversation: Conversation | None
    views: dict[str, ReplyView]

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.user = user
        self.conversation = None
        self.views = {}
        self._fallbacks: set[asyncio.Task[None]] = set()
        await self.channel_layer.group_add(user_group(user.pk), self.channel_name)
        await self.accept()
        await self.send_json({"type": "hello"})
        replies.ensure_sweeper()

    async def disconnect(self, code: int) -> None:
        if getattr(self, "user", None) is None:
            return  # refused before it was set up
        for fallback in self._fallbacks:
            fallback.cancel()
        await self.channel_layer.group_discard(user_group(self.user.pk), self.channel_name)
        if self.conversation is not None:
            await self._leave()

    async def user_deactivated(self, event: dict[str, Any]) -> None:
        """The account was deactivated: this socket may do nothing more."""
        await self.close(code=4403)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            frame = _decode(text_data, bytes_data)
            if not await _still_active(self.user.pk):
                await self.close(code=4403)
                return
            await self._dispatch(frame)
        except FrameError as error:
            await self._send_error(error.code, error.message, _frame_ref(text_data))

    async def _dispatch(self, frame: dict[str, Any]) -> None:
        handler = {
            "subscribe": self._on_subscribe,
            "send": self._on_send,
            "stop": self._on_stop,
            "ping": self._on_ping,
        }.get(frame.get("type"))  # type: ignore[arg-type]
        if handler is None:
            raise FrameError("unknown_type", "Unknown frame type.")
        await handler(frame)

    # --- browser frames ------------------------------------------------------------------------

    async def _on_ping(self, frame: dict[str, Any]) -> None:
        await self.send_json({"type": "pong"})

    async def _on_subscribe(self, frame: dict[str, Any]) -> None:
        conversation = await self._owned(required_id(frame, "conversation"))
        await self._watch(conversation)
        await self._send_state(conversation, optional_int(frame, "after_seq") or 0)

    async def _on_send(self, frame: dict[str, Any]) -> None:
        request = parse_send(frame)
        started = await db_sync(replies.store_send)(self.user, request)
        if self.conversation is None or self.conversation.pk != started.conversation.pk:
            await self._watch(started.conversation)
        await self.send_json(
            {
                "type": "ack",
                "client_id": request.client_id,
                "conversation": started.conversation.public_id,
                "title": started.conversation.display_title,
                "duplicate": started.duplicate,
                "messages": [started.user_message.to_wire(), started.reply.to_wire()],
            }
        )
        if started.duplicate:
            await self._send_state(started.conversation, started.user_message.seq - 1)
        else:
            self.views[started.reply.public_id] = ReplyView(sent=0)
            await replies.launch(started)

    async def _on_stop(self, frame: dict[str, Any]) -> None:
        conversation = await self._owned(required_id(frame, "conversation"))
        reply_id = await _streaming_reply(conversation)
        if reply_id is None:
            raise FrameError("not_running", "No reply is being written in this conversation.")
        await replies.request_stop(reply_id)

    # --- conversation state --------------------------------------------------------------------

    async def _owned(self, public_id: str) -> Conversation:
        try:
            conversation: Conversation = await db_sync(conversation_for)(self.user, public_id)
            return conversation
        except NotFound as exc:
            raise FrameError("not_found", "No such conversation.") from exc

    async def _watch(self, conversation: Conversation) -> None:
        if self.conversation is not None:
            await self._leave()
        self.conversation = conversation
        self.views = {}
        await self.channel_layer.group_add(
            replies.conversation_group(conversation.public_id), self.channel_name
        )

    async def _leave(self) -> None:
        assert self.conversation is not None
        await self.channel_layer.group_discard(
            replies.conversation_group(self.conversation.public_id), self.channel_name
        )
        self.conversation = None

    async def _send_state(self, conversation: Conversation, after_seq: int) -> None:
        """Send messages after `after_seq` (and any still streaming), then join live replies."""
        messages = await _messages_since(conversation, after_seq)
        await self.send_json(
            {
                "type": "history",
                "conversation": conversation.public_id,
                "messages": [message.to_wire() for message in messages],
            }
        )
        for message in messages:
            if message.status == Message.Status.STREAMING:
                await self._join_reply(message.public_id)

    async def _join_reply(self, reply_id: str) -> None:
        # Joined the group first, then ask the generating process (wherever it is) for the text
        # so far; deltas that overtake the snapshot are buffered, then trimmed by offset.
        self.views[reply_id] = ReplyView(sent=None)
        await replies.request_sync(reply_id, self.channel_name)
        fallback = asyncio.create_task(self._snapshot_fallback(reply_id))
        self._fallbacks.add(fallback)
        fallback.add_done_callback(self._fallbacks.discard)

    async def _snapshot_fallback(self, reply_id: str) -> None:
        await asyncio.sleep(SNAPSHOT_FALLBACK_SECONDS)
        view = self.views.get(reply_id)
        if view is None or view.sent is not None:
            return
        message = await _message(reply_id)
        if message is None:
            return
        if message.status != Message.Status.STREAMING:
            await self.reply_done({"reply": reply_id, "message": message.to_wire()})
        else:
            # Nobody answered: the generating process may be dead. Show the checkpoint; the sweep
            # will mark the reply interrupted and its `done` will follow.
            await self.reply_snapshot({"reply": reply_id, "offset": 0, "text": message.content})

    # --- events from the channel layer ---------------------------------------------------------

    async def reply_started(self, event: dict[str, Any]) -> None:
        if not self._watching(event.get("conversation")):
            return
        for message in event["messages"]:
            if message["status"] == Message.Status.STREAMING:
                self.views.setdefault(message["id"], ReplyView(sent=0))
        await self.send_json(
            {
                "type": "messages",
                "conversation": event["conversation"],
                "messages": event["messages"],
            }
        )

    async def reply_delta(self, event: dict[str, Any]) -> None:
        reply_id = event["reply"]
        view = self.views.get(reply_id)
        if view is None:
            # A reply we have not heard start (we joined between its start and now): catch up.
            await self._join_reply(reply_id)
            view = self.views[reply_id]
        if view.sent is None:
            view.buffered.append((event["offset"], event["text"]))
            return
        await self._relay(reply_id, view, event["offset"], event["text"])

    async def reply_snapshot(self, event: dict[str, Any]) -> None:
        reply_id = event["reply"]
        view = self.views.get(reply_id)
        if view is None:
            return
        if view.sent is None:
            view.sent = len(event["text"])
            await self.send_json({"type": "snapshot", "reply": reply_id, "text": event["text"]})
        else:
            await self._relay(reply_id, view, 0, event["text"])
        buffered, view.buffered = view.buffered, []
        for offset, text in sorted(buffered):
            await self._relay(reply_id, view, offset, text)

    async def reply_done(self, event: dict[str, Any]) -> None:
        # Sent whether or not this socket saw the reply stream: a swept reply is news too, and the
        # final message replaces whatever text the browser holds.
        self.views.pop(event["reply"], None)
        await self.send_json({"type": "done", "reply": event["reply"], "message": event["message"]})

    async def _relay(self, reply_id: str, view: ReplyView, offset: int, text: str) -> None:
        assert view.sent is not None
        end = offset + len(text)
        if end <= view.sent:
            return  # already sent
        if offset > view.sent:
            # A gap (a lost or reordered frame): hold this and resynchronise from the source.
            view.sent = None
            view.buffered.append((offset, text))
            await replies.request_sync(reply_id, self.channel_name)
            return
        piece = text[view.sent - offset :]
        await self.send_json(
            {"type": "delta", "reply": reply_id, "offset": view.sent, "text": piece}
        )
        view.sent = end

    def _watching(self, conversation_id: object) -> bool:
        return self.conversation is not None and self.conversation.public_id == conversation_id

    async def _send_error(self, code: str, message: str, ref: dict[str, Any]) -> None:
        await self.send_json({"type": "error", "code": code, "message": message, **ref})


def _decode(text_data: str | None, bytes_data: bytes | None) -> dict[str, Any]:
    if text_data is None:
        raise FrameError("bad_frame", "Frames are JSON text, not binary.")
    if len(text_data) > settings.MAX_FRAME_BYTES:
        raise FrameError("too_large", "The frame is too large.")
    try:
        frame = json.loads(text_data)
    except ValueError as exc:
        raise FrameError("bad_frame", "The frame is not valid JSON.") from exc
    if not isinstance(frame, dict):
        raise FrameError("bad_frame", "A frame is a JSON object with a type.")
    return frame


def _frame_ref(text_data: str | None) -> dict[str, Any]:
    """Echo the frame's type and client_id in an error so the browser knows what failed."""
    if text_data is None or len(text_data) > settings.MAX_FRAME_BYTES:
        return {}
    try:
        frame = json.loads(text_data)
    except ValueError:
        return {}
    if not isinstance(frame, dict):
        return {}
    return {
        key: frame[key]
        for key in ("client_id", "conversation")
        if isinstance(frame.get(key), str) and len(frame[key]) <= 64
    }


@db_sync
def _still_active(user_pk: int) -> bool:
    return User.objects.filter(pk=user_pk, is_active=True).exists()


@db_sync
def _messages_since(conversation: Conversation, after_seq: int) -> list[Message]:
    return list(
        conversation.messages.filter(
            Q(seq__gt=after_seq) | Q(status=Message.Status.STREAMING)
        ).order_by("seq")
    )


@db_sync
def _streaming_reply(conversation: Conversation) -> str | None:
    return (
        conversation.messages.filter(status=Message.Status.STREAMING)
        .values_list("public_id", flat=True)
        .first()
    )


@db_sync
def _message(public_id: str) -> Message | None:
    return Message.objects.filter(public_id=public_id).first()
