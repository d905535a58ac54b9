"""The chat WebSocket (docs/protocol.md): translates browser frames to the reply workflow and
back. What the socket is sent of its conversation is its `Feed`'s business (chat/replies/feed.py).
"""

from __future__ import annotations

import logging
import time
import uuid
from importlib import import_module
from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
from django.db import transaction
from django.utils import translation
from django.utils.crypto import constant_time_compare
from django.utils.translation import gettext as _
from django_stubs_ext import StrOrPromise

from chat import branches
from chat.access import NotFound, conversation_for
from chat.database import in_db_pool
from chat.incoming_frames import (
    FrameError,
    SendRequest,
    decode_frame,
    frame_ref,
    optional_int,
    parse_regenerate,
    parse_send,
    required_id,
)
from chat.languages import language_of_scope
from chat.models import Conversation, Message, User
from chat.ratelimit import TokenBucket
from chat.replies import events, generation
from chat.replies.feed import Feed
from chat.replies.hub import get_hub
from chat.replies.intake import get_intake
from chat.replies.sweep import ensure_sweeper
from chat.replies.turns import BUSY, NO_MESSAGE, Refused

log = logging.getLogger(__name__)


class ChatConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    # Not on the channel layer at all: the hub feeds this socket, so no per-socket channel, no
    # receive loop to cancel, no per-event database-connection housekeeping.
    channel_layer_alias = "no channel layer"

    user: User
    user_pk: int
    session_key: str | None
    feed: Feed
    conversation: Conversation | None = None
    # What the socket's messages are written in: chosen once, from the handshake.
    language: str = settings.LANGUAGE_CODE

    async def connect(self) -> None:
        self.language = language_of_scope(self.scope)
        user = self.scope.get("user")
        hub = await get_hub()
        # Refusals accept, then close with the documented code: a handshake refusal reaches the
        # browser as a bare 1006 it would retry forever.
        if user is None or not user.is_authenticated:
            await self.accept()
            await self.close(code=events.CLOSE_SIGNED_OUT)
            return
        self.user, self.user_pk = user, user.pk
        self.socket_id = uuid.uuid4().hex
        self.session_key = getattr(self.scope.get("session"), "session_key", None)
        # The feed first: once joined, the hub may call on_sign_out, which needs it.
        self.feed = Feed(hub, self._send_text)
        if not await hub.join_user(self, settings.WS_MAX_SOCKETS_PER_USER):
            self.feed.close()
            del self.feed
            await self.accept()
            await self.close(code=events.CLOSE_TOO_MANY_SOCKETS)
            return
        self.frame_budget = TokenBucket(settings.WS_FRAMES_PER_SECOND, settings.WS_FRAME_BURST)
        # The handshake just checked the session (AuthMiddleware loaded the user from it and
        # verified its hash): the first frame need not ask the database again.
        self._checked_at: float | None = time.monotonic()
        await self.accept()
        self.feed.queue_frame(events.hello_frame())
        ensure_sweeper()

    async def disconnect(self, code: int) -> None:
        if not hasattr(self, "feed"):
            return  # refused before it was set up
        self.feed.hub.leave_user(self)
        self.feed.close()

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels' dispatch first closes stale database connections on asgiref's one shared
        # sync thread, for every message; our database work runs in chat.database's pool.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def _send_text(self, text: str) -> None:
        await self.send(text_data=text)

    # --- browser frames ------------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        # Messages of the frames answering this one (and of a reply it starts: the generation
        # task copies this context) are in the socket's language; their codes never change.
        with translation.override(self.language):
            await self._receive(text_data, bytes_data)

    async def _receive(self, text_data: str | None, bytes_data: bytes | None) -> None:
        frame: dict[str, Any] = {}
        try:
            frame = decode_frame(text_data, bytes_data, settings.MAX_FRAME_BYTES)
            wait = self.frame_budget.take(time.monotonic())
            if wait:
                self._refuse(
                    "rate_limited", _("Too many frames at once: wait a moment."), frame, wait
                )
            elif await self._still_signed_in():
                await self._dispatch(frame)
        except FrameError as error:
            self._refuse(error.code, error.message, error.ref or frame)
        except Refused as refused:
            self._refuse(refused.code, refused.message, frame, refused.retry_after)
        except Exception:
            # A database blip, a bug: say so and keep the socket (a consumer that died here
            # would never run disconnect, and its feed would stay registered).
            log.exception("a %s frame failed", frame.get("type"))
            self._refuse("internal_error", _("Something went wrong on our side. Try again."), frame)

    async def _dispatch(self, frame: dict[str, Any]) -> None:
        handler = {
            "subscribe": self._on_subscribe,
            "send": self._on_send,
            "regenerate": self._on_regenerate,
            "switch": self._on_switch,
            "stop": self._on_stop,
            "ping": self._on_ping,
        }.get(frame["type"])
        if handler is None:
            raise FrameError("unknown_type", _("Unknown frame type."))
        await handler(frame)

    async def _on_ping(self, frame: dict[str, Any]) -> None:
        self.feed.queue_frame(events.pong_frame())

    async def _on_subscribe(self, frame: dict[str, Any]) -> None:
        conversation = await self._owned(required_id(frame, "conversation"))
        await self._watch(conversation, state_follows=True)
        after_seq = optional_int(frame, "after_seq") or 0
        await self.feed.send_state(conversation.public_id, after_seq)

    async def _on_send(self, frame: dict[str, Any]) -> None:
        await self._store(parse_send(frame))

    async def _on_regenerate(self, frame: dict[str, Any]) -> None:
        await self._store(parse_regenerate(frame))

    async def _store(self, request: SendRequest) -> None:
        """Store a turn (a `send`, or a `regenerate`'s new reply), answer `ack`, and start its
        reply, or (a resent frame) send the state instead."""
        turn = await get_intake().store(self.user, request)
        if self.conversation is None or self.conversation.pk != turn.conversation.pk:
            # A duplicate's state follows the ack (below); a fresh turn's events start after it.
            await self._watch(turn.conversation, state_follows=turn.duplicate)
        conversation = turn.conversation
        assert turn.shown is not None
        self.feed.queue_frame(
            events.ack_frame(
                request.client_id,
                conversation.public_id,
                conversation.display_title,
                turn.duplicate,
                turn.base,
                turn.shown,
            )
        )
        if turn.duplicate:
            await self.feed.send_state(conversation.public_id, turn.base)
        else:
            await generation.start(turn)

    async def _on_switch(self, frame: dict[str, Any]) -> None:
        """Show another version of a message: every socket on the conversation reloads the
        branch from where the two branches part."""
        conversation = await self._owned(required_id(frame, "conversation"))
        base = await switch_branch(conversation.pk, required_id(frame, "message"))
        if self.conversation is None or self.conversation.pk != conversation.pk:
            await self._watch(conversation)
        self.feed.hub.publish(conversation.public_id, events.branched(conversation.public_id, base))

    async def _on_stop(self, frame: dict[str, Any]) -> None:
        conversation = await self._owned(required_id(frame, "conversation"))
        reply_id = await _streaming_reply(conversation.pk)
        if reply_id is None:
            raise Refused("not_running", _("No reply is being written in this conversation."))
        self.feed.hub.request_stop(reply_id)

    async def _owned(self, public_id: str) -> Conversation:
        try:
            conversation: Conversation = await in_db_pool(conversation_for)(self.user, public_id)
            return conversation
        except NotFound as exc:
            raise Refused("not_found", _("No such conversation.")) from exc

    async def _watch(self, conversation: Conversation, *, state_follows: bool = False) -> None:
        self.conversation = conversation
        await self.feed.watch(conversation.public_id, state_follows=state_follows)

    def _refuse(
        self,
        code: str,
        message: StrOrPromise,
        frame: dict[str, Any],
        retry_after: float | None = None,
    ) -> None:
        wait = round(retry_after, 2) if retry_after is not None else None
        # str(): a lazy message becomes text here, in the socket's language.
        self.feed.queue_frame(events.error_frame(code, str(message), frame_ref(frame), wait))

    # --- who may keep this socket (the hub calls on_sign_out and on_recheck) -------------------

    def on_sign_out(self, code: int) -> None:
        self.feed.spawn(self.close(code=code))

    def on_recheck(self) -> None:
        self._checked_at = None
        self.feed.spawn(self._still_signed_in())

    async def _still_signed_in(self) -> bool:
        """Check the session at most every SESSION_RECHECK seconds; close the socket if it no
        longer signs in. Sign-out, deactivation and password changes are also pushed at once
        (`sign_out`, `recheck`), so the interval only bounds what nothing announced."""
        now = time.monotonic()
        if self._checked_at is not None and now - self._checked_at < settings.SESSION_RECHECK:
            return True
        refusal = await signed_out_code(self.user_pk, self.session_key)
        if refusal is not None:
            await self.close(code=refusal)
            return False
        self._checked_at = now
        return True


@in_db_pool
def signed_out_code(user_pk: int, session_key: str | None) -> int | None:
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
def switch_branch(conversation_pk: int, message_id: str) -> int:
    """Make the branch through `message_id` the visible one (down its newest versions); the
    seq where it parts from the branch shown before. Refused while a reply is being written:
    the page would lose sight of it."""
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update(no_key=True).get(pk=conversation_pk)
        if conversation.messages.streaming().exists():
            raise Refused(*BUSY)
        tree = branches.tree_of(conversation)
        seq = tree.seq_of(message_id)
        if seq is None:
            raise Refused(*NO_MESSAGE)
        conversation.leaf_seq = tree.newest_leaf_under(seq)
        conversation.save(update_fields=["leaf_seq"])
        return tree.parent[seq] or 0


@in_db_pool
def _streaming_reply(conversation_pk: int) -> str | None:
    return (
        Message.objects.streaming()
        .filter(conversation_id=conversation_pk)
        .values_list("public_id", flat=True)
        .first()
    )
