"""The in-process hub: one per server process, between generations and sockets.

- A generation publishes each event once: the hub hands it to every socket of this process that
  watches the conversation (a direct call, no channel layer, no database), then once to the bus
  for the other processes.
- Events from other processes arrive from the bus and are handed out the same way.
- `stop` and `sync` go straight to a generation of this process, or over the bus to whichever
  process has it.
- A watchdog repairs what a best-effort bus can lose: a `sync` nobody answered is served from the
  database checkpoint, and a followed reply that fell silent is checked in the database, so a
  socket that missed `done` still gets it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings

from chat import branches
from chat.database import in_db_pool
from chat.models import Message, WireMessage
from chat.replies import events
from chat.replies.bus import Bus, LocalBus, RedisBus, publish_to_redis_from_thread
from chat.replies.events import BusEvent, ConversationEvent

log = logging.getLogger(__name__)

# How often this process renews its sockets' claims (chat.replies.bus.SOCKET_CLAIM_SECONDS).
SOCKET_REFRESH_SECONDS = 30.0


class Watcher(Protocol):
    """What a socket sends of a conversation, as the hub sees it (chat.replies.feed.Feed)."""

    def on_event(self, event: ConversationEvent, encoded: str) -> None:
        """Called in the event loop for every event of a watched conversation; must not block."""


class UserSocket(Protocol):
    """A signed-in socket, as the hub sees it (the consumer)."""

    user_pk: int
    session_key: str | None
    socket_id: str

    def on_sign_out(self, code: int) -> None: ...

    def on_recheck(self) -> None: ...


class LocalGeneration(Protocol):
    """A reply being generated in this process, as the hub sees it."""

    reply_id: str
    conversation_id: str

    def stop(self) -> None: ...

    def published_text(self) -> str: ...


# Called in the event loop with each event of a channel it listens to; must not block.
Listener = Callable[[BusEvent], None]


@dataclass
class Followed:
    """A streaming reply some socket of this process follows."""

    conversation: str
    last_event: float
    sync_requested: float | None = None


class Hub:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._watchers: dict[str, set[Watcher]] = {}
        self._users: dict[int, set[UserSocket]] = {}
        self._generations: dict[str, LocalGeneration] = {}
        self._followed: dict[str, Followed] = {}
        self._listeners: dict[str, set[Listener]] = {}
        self._watchdog: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.bus.start(self._on_bus, self._resync_all)
        self._watchdog = asyncio.create_task(self._watch_forever(), name="relay watchdog")

    # --- sockets -------------------------------------------------------------------------------

    async def watch(self, conversation: str, socket: Watcher) -> None:
        """From now on `socket` gets every event of the conversation (subscribe first, then read
        the database: whatever happens in between arrives as an event)."""
        sockets = self._watchers.setdefault(conversation, set())
        sockets.add(socket)
        if len(sockets) == 1:
            await self.bus.subscribe(events.conversation_channel(conversation))

    def unwatch(self, conversation: str, socket: Watcher) -> None:
        sockets = self._watchers.get(conversation)
        if sockets is None or socket not in sockets:
            return
        sockets.discard(socket)
        if not sockets:
            del self._watchers[conversation]
            self.bus.unsubscribe(events.conversation_channel(conversation))
            for reply_id in [
                r for r, f in self._followed.items() if f.conversation == conversation
            ]:
                del self._followed[reply_id]

    async def join_user(self, socket: UserSocket, limit: int) -> bool:
        """Admit a socket of a user who holds fewer than `limit` sockets in all processes."""
        if len(self._users.get(socket.user_pk, ())) >= limit:
            return False
        if not await self.bus.claim_socket(socket.user_pk, socket.socket_id, limit):
            return False
        sockets = self._users.setdefault(socket.user_pk, set())
        sockets.add(socket)
        if len(sockets) == 1:
            await self.bus.subscribe(events.user_channel(socket.user_pk))
        return True

    def leave_user(self, socket: UserSocket) -> None:
        sockets = self._users.get(socket.user_pk)
        if sockets is None or socket not in sockets:
            return
        sockets.discard(socket)
        self.bus.release_socket(socket.user_pk, socket.socket_id)
        if not sockets:
            del self._users[socket.user_pk]
            self.bus.unsubscribe(events.user_channel(socket.user_pk))

    async def listen(self, channel: str, listener: Listener) -> None:
        """`listener` hears every event of `channel` (e.g. a share link's viewers, which are no
        user's sockets): a share: channel, or a user: channel (besides that user's sockets)."""
        listeners = self._listeners.setdefault(channel, set())
        listeners.add(listener)
        if len(listeners) == 1:
            await self.bus.subscribe(channel)

    def unlisten(self, channel: str, listener: Listener) -> None:
        listeners = self._listeners.get(channel)
        if listeners is None or listener not in listeners:
            return
        listeners.discard(listener)
        if not listeners:
            del self._listeners[channel]
            self.bus.unsubscribe(channel)

    # --- generations ---------------------------------------------------------------------------

    async def register(self, generation: LocalGeneration) -> None:
        self._generations[generation.reply_id] = generation
        followed = self._followed.get(generation.reply_id)
        if followed is not None and followed.sync_requested is not None:
            # A socket here asked before this generation registered; the bus does not echo
            # our own requests back, so answer it now.
            followed.sync_requested = None
            asyncio.get_running_loop().call_soon(self._answer_here, generation)
        await self.bus.subscribe(events.reply_channel(generation.reply_id))

    def unregister(self, generation: LocalGeneration) -> None:
        if self._generations.pop(generation.reply_id, None) is not None:
            self.bus.unsubscribe(events.reply_channel(generation.reply_id))

    def publish(self, conversation: str, event: ConversationEvent) -> None:
        """Hand an event to this process's sockets, then to the other processes. Never raises:
        state is already written, and a lost notification is repaired."""
        encoded = json.dumps(event)
        self._deliver(conversation, event, encoded)
        try:
            self.bus.publish(events.conversation_channel(conversation), event, encoded)
        except Exception:
            log.exception("could not publish %s", event["type"])

    def request_stop(self, reply_id: str) -> None:
        generation = self._generations.get(reply_id)
        if generation is not None:
            generation.stop()
        else:
            self._publish_control(events.stop(reply_id))

    def follow(self, reply_id: str, conversation: str, *, sync: bool) -> None:
        """A socket follows a streaming reply; with `sync`, it needs the text so far."""
        followed = self._followed.get(reply_id)
        if followed is None:
            followed = self._followed[reply_id] = Followed(conversation, time.monotonic())
        if sync:
            self._request_sync(reply_id, followed)

    def _request_sync(self, reply_id: str, followed: Followed) -> None:
        generation = self._generations.get(reply_id)
        if generation is not None:
            # Ours: answer at once, but outside the caller's event handling (with the text as it
            # is then: pieces published in between are in it, and cursors drop them).
            asyncio.get_running_loop().call_soon(self._answer_here, generation)
            return
        now = time.monotonic()
        if followed.sync_requested is not None and now - followed.sync_requested < 1.0:
            return  # one request a second per reply is enough for every socket here
        followed.sync_requested = now
        self._publish_control(events.sync(reply_id))

    def _answer_here(self, generation: LocalGeneration) -> None:
        event = events.snapshot(generation.reply_id, generation.published_text())
        self._deliver(generation.conversation_id, event, json.dumps(event))

    def answer_sync(self, generation: LocalGeneration) -> None:
        """A socket of another process needs this generation's text so far."""
        event = events.snapshot(generation.reply_id, generation.published_text())
        channel = events.conversation_channel(generation.conversation_id)
        self.bus.publish(channel, event, json.dumps(event))

    def _publish_control(self, event: events.ReplyEvent) -> None:
        channel = events.reply_channel(event["reply"])
        self.bus.publish(channel, event, json.dumps(event))

    # --- delivery ------------------------------------------------------------------------------

    def _deliver(self, conversation: str, event: ConversationEvent, encoded: str) -> None:
        self._note(event)
        for socket in tuple(self._watchers.get(conversation, ())):
            try:
                socket.on_event(event, encoded)
            except Exception:
                log.exception("a socket failed to take a %s event", event["type"])

    def _note(self, event: ConversationEvent) -> None:
        """Keep the followed replies' bookkeeping in step with what passes through."""
        if event["type"] == "started":
            for message in event["messages"]:
                if message["status"] == Message.Status.STREAMING:
                    self._followed[message["id"]] = Followed(
                        event["conversation"], time.monotonic()
                    )
            return
        if "reply" not in event:
            return  # about the conversation (its title, its branch), not one of its replies
        reply_id = event["reply"]
        if event["type"] == "done":
            self._followed.pop(reply_id, None)
            return
        followed = self._followed.get(reply_id)
        if followed is not None:
            followed.last_event = time.monotonic()
            if event["type"] == "snapshot":
                followed.sync_requested = None

    def _on_bus(self, channel: str, event: BusEvent, encoded: str) -> None:
        kind, _, key = channel.partition(":")
        if kind == "conv":
            self._deliver(key, event, encoded)  # type: ignore[arg-type]
        elif kind == "reply":
            self._on_control(event)
        elif kind == "user":
            self._on_user_event(int(key), event)
            self._tell_listeners(channel, event)
        else:
            self._tell_listeners(channel, event)

    def _tell_listeners(self, channel: str, event: BusEvent) -> None:
        for listener in tuple(self._listeners.get(channel, ())):
            try:
                listener(event)
            except Exception:
                log.exception("a listener failed to take a %s event", event["type"])

    def _on_user_event(self, user_pk: int, event: BusEvent) -> None:
        for socket in tuple(self._users.get(user_pk, ())):
            if event["type"] == "recheck":
                socket.on_recheck()
            elif event["type"] == "sign_out" and event["session"] in (None, socket.session_key):
                socket.on_sign_out(event["code"])

    def _on_control(self, event: BusEvent) -> None:
        if event["type"] not in {"stop", "sync"}:
            return
        generation = self._generations.get(event["reply"])  # type: ignore[typeddict-item]
        if generation is None:
            return
        if event["type"] == "stop":
            generation.stop()
        else:
            self.answer_sync(generation)

    def _resync_all(self) -> None:
        """The bus was cut off: every followed reply of another process may have lost events."""
        for reply_id, followed in self._followed.items():
            if reply_id not in self._generations:
                followed.sync_requested = None
                self._request_sync(reply_id, followed)

    # --- watchdog ------------------------------------------------------------------------------

    async def _watch_forever(self) -> None:
        refreshed = time.monotonic()
        while True:
            await asyncio.sleep(settings.RELAY_WATCHDOG_INTERVAL)
            try:
                await self._check_followed()
                if time.monotonic() - refreshed > SOCKET_REFRESH_SECONDS:
                    refreshed = time.monotonic()
                    self.bus.refresh_sockets(
                        {pk: [s.socket_id for s in sockets] for pk, sockets in self._users.items()}
                    )
            except Exception:
                log.exception("relay watchdog failed; retrying")

    async def _check_followed(self) -> None:
        now = time.monotonic()
        fallback, silent = [], []
        for reply_id, followed in self._followed.items():
            if reply_id in self._generations:
                continue
            if (
                followed.sync_requested is not None
                and now - followed.sync_requested > settings.RELAY_SNAPSHOT_FALLBACK
            ):
                fallback.append(reply_id)
            elif now - followed.last_event > settings.RELAY_SILENCE_CHECK:
                silent.append(reply_id)
        if not fallback and not silent:
            return
        rows = await _reply_states([*fallback, *silent])
        for reply_id, (status, message) in rows.items():
            still = self._followed.get(reply_id)
            if still is None:
                continue
            followed = still
            followed.last_event = now
            event: ConversationEvent
            if status != Message.Status.STREAMING:
                event = events.done(message)
            elif reply_id in fallback:
                # Nobody answered: the generating process may be dead. Show the checkpoint; the
                # sweep will end the reply and its `done` follows.
                followed.sync_requested = None
                event = events.snapshot(reply_id, message["content"])
            else:
                continue  # silent but alive (a slow first token): look again later
            self._deliver(followed.conversation, event, json.dumps(event))


@in_db_pool
def _reply_states(reply_ids: list[str]) -> dict[str, tuple[str, WireMessage]]:
    found = list(Message.objects.filter(public_id__in=reply_ids))
    return {
        message.public_id: (message.status, wire)
        for message, wire in zip(found, branches.wire_any(found), strict=True)
    }


# --- one hub per event loop (one per server process; tests make a loop per test) ----------------

_hubs: dict[asyncio.AbstractEventLoop, Hub] = {}


def make_bus() -> Bus:
    if settings.REDIS_URL:
        return RedisBus(settings.REDIS_URL, settings.REDIS_PREFIX, settings.REDIS_MAX_CONNECTIONS)
    return LocalBus()


async def get_hub() -> Hub:
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = Hub(make_bus())
        await hub.start()
        for stale in [other for other in _hubs if other.is_closed()]:
            del _hubs[stale]
    return hub


def running_hub() -> Hub | None:
    """This loop's hub if it was started (code that only notifies need not start one)."""
    try:
        return _hubs.get(asyncio.get_running_loop())
    except RuntimeError:
        return None


def tell_from_thread(channel: str, event: BusEvent) -> None:
    """Publish from synchronous code (a signal in a view's thread, a management command)."""
    if settings.REDIS_URL:
        publish_to_redis_from_thread(settings.REDIS_URL, settings.REDIS_PREFIX, channel, event)
        return
    for hub in list(_hubs.values()):
        if isinstance(hub.bus, LocalBus):
            hub.bus.publish_from_thread(channel, event)
