"""A lean HTTP/1.1 transport for httpx on asyncio, for reading many slow SSE streams.

Why: with httpx's default transport every ~100-byte SSE chunk goes through httpcore, h11 and
anyio, about 90 µs of CPU per chunk; relaying 100 streams at 50 chunks a second, that was half of
a daphne process. Here one network read costs one protocol callback, one pure chunked-decoder
pass and one wake-up, and each decoded piece is handed to httpx at once (no buffering, no timers).

What it does: plain HTTP/1.1 on an asyncio ``BufferedProtocol`` (``loop.create_connection``;
TLS with ``ssl.create_default_context()`` for https), a bounded keep-alive pool per (scheme,
host, port), request bodies sent whole with ``Content-Length``, responses framed by
``Transfer-Encoding: chunked``, ``Content-Length`` or the end of the connection. httpx still
decodes ``Content-Encoding``, but we ask for ``identity`` unless the caller chose an encoding.

What it does not do, on purpose:

- no proxies: httpx ignores ``HTTP(S)_PROXY`` when a transport is given, so the upstream
  (``NOBOX_BASE_URL``) must be reachable directly; turn ``NOBOX_FAST_TRANSPORT`` off otherwise;
- HTTP/1.1 only (no HTTP/2, no upgrades, no ``Expect: 100-continue``);
- connect and pool timeouts only: read and write timeouts are ignored, because a timer per read
  is what this transport exists to avoid; the Nobox client keeps its own deadlines per event.
"""

from __future__ import annotations

import asyncio
import functools
import re
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import Enum

import httpx

READ_SIZE = 65536
MAX_HEAD = 65536  # status line and headers
MAX_BUFFERED = 262144  # received but unread bytes before reading from the socket pauses
MAX_CHUNK_LINE = 4096  # a chunk-size line with extensions; longer is an attack or a bug
DEFAULT_PORTS = {"http": 80, "https": 443}
BODYLESS_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"DELETE", b"CONNECT"})

_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: ([^\x00-\x08\x0a-\x1f\x7f]*))?")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEX = re.compile(rb"[0-9A-Fa-f]+")
_DIGITS = re.compile(rb"[0-9]+")
# CTLs other than HTAB: in a request they would split or smuggle headers (h11 refuses them too).
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")

INCOMPLETE_BODY = "peer closed connection without sending complete message body"
NO_RESPONSE = "Server disconnected without sending a response."


# --- chunked transfer decoding (pure) ---------------------------------------------------------


class _State(Enum):
    SIZE = "size"
    DATA = "data"
    DATA_END = "data-end"
    TRAILER = "trailer"
    DONE = "done"


class ChunkedDecoder:
    """HTTP/1.1 chunked transfer decoding: bytes in, body pieces out, no I/O.

    A piece is returned as soon as its bytes arrive, before the rest of its chunk (and its CRLF)
    has: an SSE event must not wait for framing bytes. Chunk extensions and trailers are
    skipped. Malformed framing raises ``httpx.RemoteProtocolError``.
    """

    def __init__(self) -> None:
        self._state = _State.SIZE
        self._remaining = 0
        self._pending = b""  # an incomplete size line, trailer line or CRLF

    @property
    def done(self) -> bool:
        return self._state is _State.DONE

    @property
    def trailing(self) -> bytes:
        """Bytes received after the terminating chunk: the server said more than one response."""
        return self._pending if self.done else b""

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._pending + data if self._pending else data
        pieces: list[bytes] = []
        pos, end = 0, len(buf)
        while pos < end and self._state is not _State.DONE:
            if self._state is _State.DATA:
                take = min(self._remaining, end - pos)
                pieces.append(buf[pos : pos + take])
                pos += take
                self._remaining -= take
                if not self._remaining:
                    self._state = _State.DATA_END
                continue
            advanced = self._framing(buf, pos)
            if advanced == pos:
                break  # the rest of a line or CRLF is still on its way
            pos = advanced
        self._pending = buf[pos:]
        if self._state is not _State.DONE and len(self._pending) > MAX_CHUNK_LINE:
            raise httpx.RemoteProtocolError("chunk size line or trailer too long")
        return pieces

    def _framing(self, buf: bytes, pos: int) -> int:
        """Consume one framing element at ``pos``; return the new position (``pos``: need more)."""
        if self._state is _State.DATA_END:
            if len(buf) - pos < 2:
                return pos
            if buf[pos : pos + 2] != b"\r\n":
                raise httpx.RemoteProtocolError("chunk data not followed by CRLF")
            self._state = _State.SIZE
            return pos + 2
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return pos
        if self._state is _State.SIZE:
            self._start_chunk(buf[pos:eol])
        elif eol == pos:  # the empty line that ends the trailers
            self._state = _State.DONE
        return eol + 2

    def _start_chunk(self, line: bytes) -> None:
        size = line.split(b";", 1)[0].strip(b" \t")
        # int(x, 16) alone would also take "0x1f", "+1f" and "1_f"
        if not _HEX.fullmatch(size):
            raise httpx.RemoteProtocolError("malformed chunk size line")
        self._remaining = int(size, 16)
        self._state = _State.DATA if self._remaining else _State.TRAILER


# --- the response head (pure) -----------------------------------------------------------------


class Framing(Enum):
    CHUNKED = "chunked"
    UNTIL_CLOSE = "until-close"


@dataclass(frozen=True)
class ResponseHead:
    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    body: int | Framing  # an int is a Content-Length (0: no body)
    keep_alive: bool  # the connection may carry another request after this body


def parse_head(raw: bytes, method: bytes) -> ResponseHead:
    """Parse a response head (status line and headers, ending with CRLF CRLF)."""
    lines = raw[:-4].split(b"\r\n")
    status_line = _STATUS_LINE.fullmatch(lines[0])
    if status_line is None:
        raise httpx.RemoteProtocolError("malformed status line")
    headers = [_header(line) for line in lines[1:]]
    minor, status = status_line.group(1), int(status_line.group(2))
    fields = _connection_fields(headers)
    body = _body_framing(method, status, fields)
    connection = {token.strip() for token in fields.get(b"connection", b"").split(b",")}
    keep_alive = (
        (b"close" not in connection if minor == b"1" else b"keep-alive" in connection)
        and body is not Framing.UNTIL_CLOSE
        # both framings at once is how responses get smuggled: never reuse that connection
        and not (b"transfer-encoding" in fields and b"content-length" in fields)
    )
    return ResponseHead(status, status_line.group(3) or b"", headers, body, keep_alive)


def _header(line: bytes) -> tuple[bytes, bytes]:
    name, colon, value = line.partition(b":")
    # a name with leading whitespace is an obsolete folded line: refused, as h11 does
    if not colon or not _TOKEN.fullmatch(name) or _CONTROL.search(value):
        raise httpx.RemoteProtocolError("malformed response header line")
    return name, value.strip(b" \t")


def _connection_fields(headers: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """The framing headers, lower-cased, repeated ones joined with commas."""
    wanted = (b"connection", b"content-length", b"transfer-encoding")
    fields: dict[bytes, bytes] = {}
    for name, value in headers:
        key = name.lower()
        if key in wanted:
            fields[key] = fields[key] + b"," + value.lower() if key in fields else value.lower()
    return fields


def _body_framing(method: bytes, status: int, fields: dict[bytes, bytes]) -> int | Framing:
    if status == 101:
        raise httpx.RemoteProtocolError("the server switched protocols, which we never ask for")
    if method == b"HEAD" or status < 200 or status in (204, 304):
        return 0
    encoding = fields.get(b"transfer-encoding")
    if encoding is not None:
        last = encoding.rsplit(b",", 1)[-1].strip()
        return Framing.CHUNKED if last == b"chunked" else Framing.UNTIL_CLOSE
    length = fields.get(b"content-length")
    if length is None:
        return Framing.UNTIL_CLOSE
    values = {value.strip() for value in length.split(b",")}
    if len(values) != 1 or not _DIGITS.fullmatch(next(iter(values))):
        raise httpx.RemoteProtocolError("malformed Content-Length header")
    return int(values.pop())


# --- the request head (pure) ------------------------------------------------------------------


def request_bytes(request: httpx.Request, body: bytes, default_encoding: bytes | None) -> bytes:
    """The request head and body, ready to write.

    ``default_encoding`` is the Accept-Encoding httpx adds by itself; that one, or none, becomes
    ``identity`` so that SSE bytes need no decoding. A caller's own choice is kept.
    """
    lines = [request.method.encode("ascii") + b" " + request.url.raw_path + b" HTTP/1.1"]
    names = set()
    for name, value in request.headers.raw:
        key = name.lower()
        if key in (b"content-length", b"transfer-encoding"):
            continue  # the body is sent whole, so it is framed by its length below
        if key == b"accept-encoding" and value == default_encoding:
            value = b"identity"
        if not _TOKEN.fullmatch(name) or _CONTROL.search(value):
            raise httpx.LocalProtocolError("illegal character in a request header")
        names.add(key)
        lines.append(name + b": " + value)
    if b"host" not in names:
        lines.insert(1, b"Host: " + request.url.netloc)
    if b"accept-encoding" not in names:
        lines.append(b"Accept-Encoding: identity")
    if body or request.method.encode("ascii") not in BODYLESS_METHODS:
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@functools.cache
def _httpx_accept_encoding() -> bytes | None:
    """The Accept-Encoding an httpx client adds to every request by default."""
    probe = httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(204)))
    value = probe.headers.get("Accept-Encoding")
    return None if value is None else value.encode("ascii")


# --- connections and the pool -----------------------------------------------------------------


class _Connection(asyncio.BufferedProtocol):
    """One socket; received bytes wait here until the response reads them.

    A BufferedProtocol rather than asyncio streams: for a plain protocol asyncio calls
    ``recv(256 KiB)`` per read, and allocating (mmap) and shrinking that buffer costs ~12 µs, more
    than everything else per SSE chunk. Here the kernel (or the TLS layer) writes into one
    preallocated buffer and only the bytes received are copied out.
    """

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._view = memoryview(bytearray(READ_SIZE))
        self._received: list[bytes] = []
        self._size = 0
        self._ended = False  # the peer closed (EOF) or the connection was lost
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self._transport: asyncio.Transport | None = None
        self.idle_since = 0.0

    # asyncio.BufferedProtocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        self._received.append(bytes(self._view[:nbytes]))
        self._size += nbytes
        if self._size > MAX_BUFFERED and not self._paused and self._transport is not None:
            self._paused = True  # the reader is slow: let TCP push back on the server
            self._transport.pause_reading()
        self._wake()

    def eof_received(self) -> None:
        self._ended = True
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended = True
        self._error = exc
        self._wake()

    # for the transport

    def usable(self, now: float, expiry: float) -> bool:
        """Fit for another request: not expired, not closed by the server, nothing unasked for."""
        fresh = now - self.idle_since < expiry
        return fresh and not self._ended and not self._received and not self.closing()

    def closing(self) -> bool:
        return self._transport is None or self._transport.is_closing()

    def write(self, data: bytes) -> None:
        # No drain: request bodies are small, and a write error shows up as a lost connection.
        assert self._transport is not None
        self._transport.write(data)

    async def read(self) -> bytes:
        """Everything received and not read yet (waiting for at least one byte); b"" at EOF."""
        if not self._received:
            if self._ended:
                return self._end()
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
            if not self._received:
                return self._end()
        received = self._received
        data = received[0] if len(received) == 1 else b"".join(received)
        self._received, self._size = [], 0
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        return data

    def unread(self, data: bytes) -> None:
        self._received.insert(0, data)
        self._size += len(data)

    def abort(self) -> None:
        # abort, not close: no TLS close_notify dance, the peer sees the socket go at once
        if self._transport is not None:
            self._transport.abort()

    def _end(self) -> bytes:
        if self._error is not None:
            raise httpx.ReadError(f"{type(self._error).__name__}: {self._error}")
        return b""

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


@dataclass(frozen=True)
class _Origin:
    scheme: str
    host: str
    port: int


class _Pool:
    """Connections to one origin: at most ``max_connections`` in use, ``max_idle`` kept warm."""

    def __init__(
        self, origin: _Origin, transport: FastTransport, max_connections: int, max_idle: int
    ) -> None:
        self._origin = origin
        self._transport = transport
        self._slots = asyncio.Semaphore(max_connections)
        self._max_idle = max_idle
        self._idle: list[_Connection] = []  # most recently used last
        self._open: set[_Connection] = set()

    async def take_slot(self, timeout: float | None) -> None:
        if not self._slots.locked():
            await self._slots.acquire()  # returns without suspending
            return
        try:
            async with asyncio.timeout(timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no free connection to Nobox in time") from None

    def idle_connection(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if connection.usable(now, self._transport.keepalive_expiry):
                return connection
            self.drop(connection)
        return None

    async def connect(self, timeout: float | None) -> _Connection:
        origin = self._origin
        context = self._transport.ssl_context() if origin.scheme == "https" else None
        try:
            async with asyncio.timeout(timeout):
                _, connection = await asyncio.get_running_loop().create_connection(
                    _Connection,
                    origin.host,
                    origin.port,
                    ssl=context,
                    server_hostname=origin.host if context else None,
                )
        except TimeoutError:  # before OSError: it is one
            raise httpx.ConnectTimeout(f"connecting to {origin.host}:{origin.port}") from None
        except OSError as exc:  # refused, unreachable, DNS, TLS verification...
            raise httpx.ConnectError(f"{type(exc).__name__}: {exc}") from None
        self._open.add(connection)
        return connection

    def check_in(self, connection: _Connection, reusable: bool) -> None:
        """The response is closed: keep its connection for the next request, or close it."""
        self._slots.release()
        if not reusable or self._transport.closed:
            self.drop(connection)
            return
        connection.idle_since = time.monotonic()
        self._idle.append(connection)
        if len(self._idle) > self._max_idle:
            self.drop(self._idle.pop(0))

    def give_back_slot(self) -> None:
        self._slots.release()

    def drop(self, connection: _Connection) -> None:
        self._open.discard(connection)
        connection.abort()

    def close(self) -> None:
        for connection in list(self._open):
            self.drop(connection)
        self._idle.clear()


# --- the response body ------------------------------------------------------------------------


class _ResponseStream(httpx.AsyncByteStream):
    """The body as it arrives; closing it returns the connection or closes it.

    The connection is reused only when the whole body was read (``complete`` is set as soon as
    the last bytes are decoded, even if the caller stops iterating right after the last piece)
    and the server allows it. Anything else (an abandoned stream, an error) closes the socket at
    once, which is how Nobox and the simulator learn to stop generating.
    """

    def __init__(
        self, pool: _Pool, connection: _Connection, body: int | Framing, keep_alive: bool
    ) -> None:
        self._pool = pool
        self._connection = connection
        self._body = body
        self._keep_alive = keep_alive
        self._complete = body == 0
        self._closed = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        if self._body is Framing.CHUNKED:
            return self._chunked()
        if self._body is Framing.UNTIL_CLOSE:
            return self._until_close()
        return self._sized(self._body)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._pool.check_in(self._connection, self._complete and self._keep_alive)

    async def _chunked(self) -> AsyncIterator[bytes]:
        decoder = ChunkedDecoder()
        read = self._connection.read
        while not self._complete:
            data = await read()
            if not data:
                raise httpx.RemoteProtocolError(INCOMPLETE_BODY + ": incomplete chunked read")
            pieces = decoder.feed(data)
            if decoder.done:
                # bytes past the terminator belong to no request: do not reuse the connection
                self._keep_alive = self._keep_alive and not decoder.trailing
                self._complete = True
            for piece in pieces:
                yield piece

    async def _sized(self, length: int) -> AsyncIterator[bytes]:
        read, remaining = self._connection.read, length
        while remaining:
            data = await read()
            if not data:
                raise httpx.RemoteProtocolError(INCOMPLETE_BODY)
            if len(data) > remaining:
                self._keep_alive = False  # more than announced: the framing is off
                data = data[:remaining]
            remaining -= len(data)
            self._complete = not remaining
            yield data

    async def _until_close(self) -> AsyncIterator[bytes]:
        read = self._connection.read
        while data := await read():
            yield data
        self._complete = True  # the socket is closed anyway: keep_alive is False


# --- the transport ----------------------------------------------------------------------------


class _NothingReceived(Exception):
    """The connection failed before any byte of the response: a stale keep-alive connection."""

    def __init__(self, error: httpx.TransportError) -> None:
        super().__init__(str(error))
        self.error = error


class FastTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 on asyncio with a keep-alive pool per origin (see the module docstring).

    Limits are per origin: ``max_connections`` requests in flight (more wait up to the request's
    pool timeout), ``max_idle`` connections kept for reuse, each for ``keepalive_expiry`` seconds.
    """

    def __init__(
        self,
        *,
        max_connections: int = 100,
        max_idle: int = 20,
        keepalive_expiry: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.keepalive_expiry = keepalive_expiry
        self.closed = False
        self._max_connections = max_connections
        self._max_idle = max_idle
        self._ssl_context = ssl_context
        self._pools: dict[_Origin, _Pool] = {}
        self._default_encoding = _httpx_accept_encoding()

    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl_context is None:  # built on first https use: it loads the CA bundle
            context = ssl.create_default_context()
            context.set_alpn_protocols(["http/1.1"])
            self._ssl_context = context
        return self._ssl_context

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.closed:
            raise RuntimeError("the transport is closed")
        pool = self._pool_for(request.url)
        data = request_bytes(request, await request.aread(), self._default_encoding)
        timeouts = request.extensions.get("timeout", {})
        await pool.take_slot(timeouts.get("pool"))
        try:
            return await self._exchange(pool, request, data, timeouts.get("connect"))
        except BaseException:
            pool.give_back_slot()
            raise

    async def aclose(self) -> None:
        self.closed = True
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()

    def _pool_for(self, url: httpx.URL) -> _Pool:
        port = url.port or DEFAULT_PORTS.get(url.scheme)
        if port is None:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}")
        origin = _Origin(url.scheme, url.raw_host.decode("ascii"), port)
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._pools[origin] = _Pool(origin, self, self._max_connections, self._max_idle)
        return pool

    async def _exchange(
        self, pool: _Pool, request: httpx.Request, data: bytes, connect_timeout: float | None
    ) -> httpx.Response:
        connection = pool.idle_connection()
        if connection is not None:
            try:
                return await self._send(pool, connection, request, data)
            except _NothingReceived:
                pass  # the server had closed it while idle: one more try on a new connection
        connection = await pool.connect(connect_timeout)
        try:
            return await self._send(pool, connection, request, data)
        except _NothingReceived as exc:
            raise exc.error from None

    async def _send(
        self, pool: _Pool, connection: _Connection, request: httpx.Request, data: bytes
    ) -> httpx.Response:
        """One request on one connection; the connection is dropped if this raises."""
        try:
            head = await _write_and_read_head(connection, data, request.method.encode("ascii"))
        except BaseException:
            pool.drop(connection)
            raise
        return httpx.Response(
            head.status,
            headers=head.headers,
            stream=_ResponseStream(pool, connection, head.body, head.keep_alive),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": head.reason},
        )


async def _write_and_read_head(connection: _Connection, data: bytes, method: bytes) -> ResponseHead:
    if connection.closing():
        raise _NothingReceived(httpx.WriteError("the connection was closed"))
    connection.write(data)
    received = False
    while True:
        raw = await _read_head(connection, received)
        received = True
        head = parse_head(raw, method)
        if not 100 <= head.status < 200:
            return head  # interim 1xx responses (103 Early Hints...) precede the real one


async def _read_head(connection: _Connection, received: bool) -> bytes:
    """Bytes up to and including the blank line; what follows is left for the body."""
    head = b""
    while True:
        try:
            data = await connection.read()
        except httpx.ReadError as exc:  # a reset gives no hint that anything was received
            raise exc if received or head else _NothingReceived(exc) from None
        if not data:
            if received or head:
                raise httpx.RemoteProtocolError("the server closed the connection mid-head")
            raise _NothingReceived(httpx.RemoteProtocolError(NO_RESPONSE))
        # search from just before the new bytes: the blank line may straddle two reads
        start = max(len(head) - 3, 0)
        head += data
        end = head.find(b"\r\n\r\n", start)
        if end >= 0:
            if end + 4 < len(head):
                connection.unread(head[end + 4 :])
            return head[: end + 4]
        if len(head) > MAX_HEAD:
            raise httpx.RemoteProtocolError("the response head is too large")
