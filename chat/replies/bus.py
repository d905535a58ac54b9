"""Carries relay events between server processes: Redis pub/sub, or nothing for one process.

A hub publishes each event once per conversation (not once per socket), so Redis work grows with
processes, not sockets. Delivery is best-effort by design: a lost event is repaired by offsets,
snapshots and the hub's watchdog; nothing here may block or fail the generation that publishes.

The subscriber speaks RESP on a connection of its own, read by one task that is never cancelled
while the process lives (cancelling a task inside a Redis read can lose messages, channels_redis
issue 366); subscribing and unsubscribing only write to that connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Protocol
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio

from chat.replies.events import BusEvent

log = logging.getLogger(__name__)

# (channel, the event, the event as JSON)
Handler = Callable[[str, BusEvent, str], None]
# Called after the bus was cut off from other processes and is back: events may have been lost.
Reconnected = Callable[[], None]

# An outage holds at most this many events for Redis; older ones are dropped (and repaired).
MAX_QUEUED = 20_000
RECONNECT_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0)
# The subscriber pings Redis this often; two intervals without an answer mean a dead connection.
PING_SECONDS = 15.0


class Bus(Protocol):
    async def start(self, handler: Handler, reconnected: Reconnected) -> None: ...

    def publish(self, channel: str, event: BusEvent, encoded: str) -> None: ...

    async def subscribe(self, channel: str) -> None: ...

    def unsubscribe(self, channel: str) -> None: ...

    async def claim_socket(self, user_pk: int, socket_id: str, limit: int) -> bool: ...

    def release_socket(self, user_pk: int, socket_id: str) -> None: ...

    def refresh_sockets(self, sockets: dict[int, list[str]]) -> None: ...


def _envelope(origin: str, encoded: str) -> str:
    # Built by concatenation: the event is already JSON, so it is not encoded a second time.
    return f'{{"o":"{origin}","e":{encoded}}}'


def _open_envelope(payload: str) -> tuple[str, str]:
    """(origin, event JSON) of an envelope made by `_envelope`."""
    end = payload.index('"', 6)
    return payload[6:end], payload[end + 6 : -1]


class LocalBus:
    """One process: every socket is fed by the hub directly; only thread-side events need a hop."""

    def __init__(self) -> None:
        self._handler: Handler | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self, handler: Handler, reconnected: Reconnected) -> None:
        self._handler = handler
        self._loop = asyncio.get_running_loop()

    def publish(self, channel: str, event: BusEvent, encoded: str) -> None:
        return None  # no other process to tell

    def publish_from_thread(self, channel: str, event: BusEvent) -> None:
        loop, handler = self._loop, self._handler
        if loop is None or handler is None or loop.is_closed():
            return  # no socket was ever opened in this process: nobody to tell
        encoded = json.dumps(event)
        loop.call_soon_threadsafe(handler, channel, event, encoded)

    async def subscribe(self, channel: str) -> None:
        return None

    def unsubscribe(self, channel: str) -> None:
        return None

    # One process: the hub's own count of a user's sockets is the whole count.
    async def claim_socket(self, user_pk: int, socket_id: str, limit: int) -> bool:
        return True

    def release_socket(self, user_pk: int, socket_id: str) -> None:
        return None

    def refresh_sockets(self, sockets: dict[int, list[str]]) -> None:
        return None


class RedisBus:
    def __init__(self, url: str, prefix: str, max_connections: int) -> None:
        self.origin = uuid.uuid4().hex
        self.url = url
        self.prefix = prefix + ":"
        self._handler: Handler | None = None
        self._reconnected: Reconnected | None = None
        self._channels: dict[str, int] = {}  # subscribed channel -> subscribers in this process
        self._confirmations: dict[str, deque[asyncio.Future[None]]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._outbox: deque[tuple[str, str]] = deque()
        self._wake = asyncio.Event()
        self._down_since: float | None = None
        # Publishes wait for a free connection instead of failing (redis-py's default pool
        # raises "Too many connections" past its limit).
        self._client = redis.asyncio.Redis(
            connection_pool=redis.asyncio.BlockingConnectionPool.from_url(
                url, max_connections=max_connections, timeout=10, health_check_interval=30
            )
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._releases: set[asyncio.Task[None]] = set()
        self._last_read = time.monotonic()

    async def start(self, handler: Handler, reconnected: Reconnected) -> None:
        self._handler = handler
        self._reconnected = reconnected
        self._tasks = [
            asyncio.create_task(self._subscriber(), name="bus subscriber"),
            asyncio.create_task(self._publisher(), name="bus publisher"),
        ]

    # --- publishing ------------------------------------------------------------------------------

    def publish(self, channel: str, event: BusEvent, encoded: str) -> None:
        if len(self._outbox) >= MAX_QUEUED:
            self._outbox.popleft()
        self._outbox.append((self.prefix + channel, _envelope(self.origin, encoded)))
        self._wake.set()

    async def _publisher(self) -> None:
        """One task sends every publish, in order, pipelined: one round trip per batch."""
        failing_since: float | None = None
        while True:
            if not self._outbox:
                self._wake.clear()
                await self._wake.wait()
            batch = list(self._outbox)
            self._outbox.clear()
            try:
                async with self._client.pipeline(transaction=False) as pipe:
                    for channel, payload in batch:
                        pipe.publish(channel, payload)
                    await pipe.execute()
            except (redis.RedisError, OSError) as error:
                # Kept for the next try, in order, within the bound.
                self._outbox.extendleft(reversed(batch))
                while len(self._outbox) > MAX_QUEUED:
                    self._outbox.popleft()
                # Pooled connections a restarted Redis closed fail once each: drop them all
                # and try again at once; only a failure that lasts is an outage.
                with contextlib.suppress(redis.RedisError, OSError):
                    await self._client.connection_pool.disconnect()
                now = time.monotonic()
                failing_since = failing_since or now
                if now - failing_since > 1.0:
                    self._outage(f"publishing: {error}")
                await asyncio.sleep(0.1 if now - failing_since < 1.0 else 0.5)
                continue
            failing_since = None
            self._recovered()

    # --- subscribing -----------------------------------------------------------------------------

    async def subscribe(self, channel: str) -> None:
        """Subscribe (counted per process); returns once Redis confirmed it, or after 2 s."""
        count = self._channels.get(channel, 0)
        self._channels[channel] = count + 1
        if count or self._writer is None:
            return  # already subscribed, or subscribed at (re)connection
        waiter = asyncio.get_running_loop().create_future()
        self._confirmations.setdefault(channel, deque()).append(waiter)
        self._send_command(b"SUBSCRIBE", channel)
        # After 2 s go on: an event lost in the meantime is repaired like any other.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(waiter), timeout=2)

    def unsubscribe(self, channel: str) -> None:
        count = self._channels.get(channel, 0)
        if count > 1:
            self._channels[channel] = count - 1
            return
        self._channels.pop(channel, None)
        if count and self._writer is not None:
            self._send_command(b"UNSUBSCRIBE", channel)

    def _send_command(self, command: bytes, *channels: str) -> None:
        if self._writer is None:
            return
        parts = [command, *(self.prefix.encode() + c.encode() for c in channels)]
        self._writer.write(_resp_command(parts))

    async def _subscriber(self) -> None:
        attempt = 0
        connected_before = False
        while True:
            try:
                reader, writer = await _connect(self.url)
            except (OSError, redis.RedisError, ValueError, asyncio.IncompleteReadError) as error:
                self._outage(f"subscribing: {error}")
                await asyncio.sleep(RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)])
                attempt += 1
                continue
            attempt = 0
            self._last_read = time.monotonic()
            self._writer = writer
            if self._channels:
                self._send_command(b"SUBSCRIBE", *self._channels)
            self._recovered()
            if connected_before and self._reconnected is not None:
                self._reconnected()  # events published while we were away are lost
            connected_before = True
            pinger = asyncio.create_task(self._ping_while_connected(writer), name="bus pinger")
            try:
                await self._read(reader)
            except (OSError, ValueError, asyncio.IncompleteReadError) as error:
                self._outage(f"subscriber connection: {error!r}")
            finally:
                pinger.cancel()
                self._writer = None
                writer.close()
                for waiters in self._confirmations.values():
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_result(None)
                self._confirmations.clear()

    async def _ping_while_connected(self, writer: asyncio.StreamWriter) -> None:
        """A connection that went quiet without closing (a NAT or balancer forgot it) would
        block the reader forever: ping it, and cut it when the answers stop."""
        while True:
            await asyncio.sleep(PING_SECONDS)
            if time.monotonic() - self._last_read > 2 * PING_SECONDS:
                log.warning("Redis subscriber connection went quiet; reconnecting")
                writer.transport.abort()
                return
            writer.write(_resp_command([b"PING"]))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        prefix_length = len(self.prefix)
        while True:
            item = await _read_resp(reader)
            self._last_read = time.monotonic()
            if not isinstance(item, list) or len(item) < 3:
                continue
            kind = item[0]
            if kind == b"message" and self._handler is not None:
                channel = item[1].decode()[prefix_length:]
                origin, encoded = _open_envelope(item[2].decode())
                if origin == self.origin:
                    continue  # our own publish: local sockets were fed directly
                try:
                    self._handler(channel, json.loads(encoded), encoded)
                except Exception:
                    # One bad event must not end the only reader of this process's events.
                    log.exception("could not handle an event on %s", channel)
            elif kind == b"subscribe":
                channel = item[1].decode()[prefix_length:]
                waiters = self._confirmations.get(channel)
                if waiters:
                    waiter = waiters.popleft()
                    if not waiter.done():
                        waiter.set_result(None)
                    if not waiters:
                        del self._confirmations[channel]

    # --- a user's sockets in every process --------------------------------------------------------

    def _sockets_key(self, user_pk: int) -> str:
        return f"{self.prefix}sockets:{user_pk}"

    async def claim_socket(self, user_pk: int, socket_id: str, limit: int) -> bool:
        """Count this socket against the user's limit over all processes (atomic in Redis).
        Without Redis the answer is yes: the limit is a guard, not worth refusing people for."""
        try:
            return await _claim(self._client, self._sockets_key(user_pk), socket_id, limit)
        except (redis.RedisError, OSError) as error:
            log.warning("could not count sockets in Redis (%s); allowing this one", error)
            return True

    def release_socket(self, user_pk: int, socket_id: str) -> None:
        task = asyncio.create_task(self._release(self._sockets_key(user_pk), socket_id))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def _release(self, key: str, socket_id: str) -> None:
        with contextlib.suppress(redis.RedisError, OSError):
            await self._client.zrem(key, socket_id)

    def refresh_sockets(self, sockets: dict[int, list[str]]) -> None:
        """Renew this process's claims (called well within SOCKET_CLAIM_SECONDS)."""
        if sockets:
            task = asyncio.create_task(self._refresh(sockets))
            self._releases.add(task)
            task.add_done_callback(self._releases.discard)

    async def _refresh(self, sockets: dict[int, list[str]]) -> None:
        lapse = time.time() + SOCKET_CLAIM_SECONDS
        with contextlib.suppress(redis.RedisError, OSError):
            async with self._client.pipeline(transaction=False) as pipe:
                for user_pk, ids in sockets.items():
                    pipe.zadd(self._sockets_key(user_pk), dict.fromkeys(ids, lapse))
                    pipe.expire(self._sockets_key(user_pk), SOCKET_CLAIM_SECONDS)
                await pipe.execute()

    # --- outages: one line when it starts, one when it ends --------------------------------------

    def _outage(self, what: str) -> None:
        if self._down_since is None:
            self._down_since = asyncio.get_running_loop().time()
            log.warning("Redis unavailable (%s); relaying within this process only", what)

    def _recovered(self) -> None:
        if self._down_since is not None:
            lasted = asyncio.get_running_loop().time() - self._down_since
            self._down_since = None
            log.warning("Redis available again after %.1f s; resynchronising", lasted)


# --- publishing from synchronous code -----------------------------------------------------------

_sync_clients: dict[str, redis.Redis] = {}
_sync_lock = threading.Lock()


def publish_to_redis_from_thread(url: str, prefix: str, channel: str, event: BusEvent) -> None:
    """Publish from synchronous code (a signal in a view's thread, a management command), on a
    plain client of its own: every process subscribed, this one included, hears it."""
    with _sync_lock:
        client = _sync_clients.get(url)
        if client is None:
            client = _sync_clients[url] = redis.Redis.from_url(url, socket_connect_timeout=5)
    try:
        client.publish(f"{prefix}:{channel}", _envelope("thread", json.dumps(event)))
    except redis.RedisError:
        log.warning("could not publish %s to Redis", event["type"])


# --- a user's sockets across processes ----------------------------------------------------------

# A sorted set per user: member = socket id, score = when the claim lapses unless refreshed. A
# process that dies takes its claims with it within SOCKET_CLAIM_SECONDS.
SOCKET_CLAIM_SECONDS = 90
CLAIM_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


async def _claim(client: redis.asyncio.Redis, key: str, socket_id: str, limit: int) -> bool:
    now = time.time()
    claimed = await client.eval(
        CLAIM_SCRIPT,
        1,
        key,
        now,
        now + SOCKET_CLAIM_SECONDS,
        limit,
        socket_id,
        SOCKET_CLAIM_SECONDS,
    )
    return bool(claimed)


# --- a minimal RESP client for the subscriber connection ---------------------------------------


def _resp_command(parts: list[bytes]) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


async def _read_resp(reader: asyncio.StreamReader) -> object:
    line = await reader.readuntil(b"\r\n")
    kind, rest = line[:1], line[1:-2]
    if kind == b"*":
        return [await _read_resp(reader) for _ in range(int(rest))]
    if kind == b"$":
        length = int(rest)
        if length < 0:
            return None
        data = await reader.readexactly(length + 2)
        return data[:-2]
    if kind == b":":
        return int(rest)
    if kind == b"+":
        return rest
    if kind == b"-":
        raise ValueError(f"Redis error: {rest.decode(errors='replace')}")
    raise ValueError(f"unexpected RESP type {kind!r}")


async def _connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    parts = urlsplit(url)
    if parts.scheme not in {"redis", "rediss"}:
        raise ValueError(f"REDIS_URL must be redis:// or rediss://, not {parts.scheme}://")
    context = ssl.create_default_context() if parts.scheme == "rediss" else None
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(parts.hostname or "127.0.0.1", parts.port or 6379, ssl=context),
        timeout=5,
    )
    try:
        if parts.password:
            auth = [b"AUTH"]
            if parts.username:
                auth.append(unquote(parts.username).encode())
            auth.append(unquote(parts.password).encode())
            writer.write(_resp_command(auth))
            await asyncio.wait_for(_read_resp(reader), timeout=5)
        # Connected means answering: a Redis that is still starting accepts and then resets.
        writer.write(_resp_command([b"PING"]))
        await asyncio.wait_for(_read_resp(reader), timeout=5)
    except BaseException:
        writer.close()
        raise
    return reader, writer
