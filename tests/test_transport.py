"""FastTransport: the Nobox client over it behaves exactly as over httpx's default transport
(against the real simulator), and HTTP/1.1 framing, pooling and failures are right (against tiny
scripted servers written here)."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import ipaddress
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field

import httpx
import pytest

from chat.nobox import (
    ChatRequest,
    Completed,
    ConnectionFailed,
    Delta,
    IncompleteStream,
    NoboxClient,
    NoboxTimeout,
    RetryPolicy,
    Timeouts,
)
from chat.nobox.client import UnsendableToken
from chat.nobox.transport import MAX_BUFFERED, ChunkedDecoder, FastTransport, _Connection
from tests.servers import free_port

TOKEN = "sk-transport-test"
NO_RETRY = RetryPolicy(attempts=1)
FAST_SIM = {"X-Sim-Tokens-Per-Second": "0"}  # the session simulator paces replies; not here


def hello(model: str, text: str = "Tell me about café culture", **extra) -> ChatRequest:
    return ChatRequest(model=model, messages=[{"role": "user", "content": text}], **extra)


async def stream_all(client: NoboxClient, request: ChatRequest) -> tuple[list[str], Completed]:
    texts: list[str] = []
    async with aclosing(client.stream_chat(TOKEN, request)) as stream:
        async for item in stream:
            if isinstance(item, Delta):
                texts.append(item.text)
            else:
                return texts, item
    raise AssertionError("the stream ended without Completed")


@asynccontextmanager
async def nobox(base_url: str, transport: httpx.AsyncBaseTransport | None, **options):
    async with httpx.AsyncClient(transport=transport, headers=FAST_SIM) as http:
        yield NoboxClient(base_url, http, **options)


# --- against the simulator ----------------------------------------------------------------


def _comparable(texts: list[str]) -> list[str]:
    # sim/bench stamps each chunk with the time it was sent
    return [re.sub(r"t=\d+\.\d+", "t=", text) for text in texts]


@pytest.mark.parametrize(
    "request_",
    [
        hello("openai/gpt-4o"),
        hello("sim/markdown"),
        hello("sim/long"),
        hello("sim/bench", "bench chunks=300 rate=0"),
        hello("meta/llama-3.3-70b", max_tokens=7),
    ],
    ids=["gpt-4o", "markdown", "long", "bench", "max-tokens"],
)
async def test_streams_the_same_events_as_httpx_default_transport(
    simulator_url: str, request_: ChatRequest
) -> None:
    async with nobox(simulator_url, None) as client:
        expected_texts, expected = await stream_all(client, request_)
    async with nobox(simulator_url, FastTransport()) as client:
        texts, completed = await stream_all(client, request_)

    assert _comparable(texts) == _comparable(expected_texts)
    assert len(texts) > 3
    assert completed.usage == expected.usage is not None
    assert completed.finish_reason == expected.finish_reason
    assert completed.model == expected.model


async def test_max_tokens_cut_reports_length(simulator_url: str) -> None:
    async with nobox(simulator_url, FastTransport()) as client:
        texts, completed = await stream_all(client, hello("openai/gpt-4o", max_tokens=5))
    assert len(texts) == 5
    assert completed.finish_reason == "length"


async def test_completes_and_lists_models_like_httpx_default_transport(simulator_url: str) -> None:
    request = hello("anthropic/claude-3.5-sonnet")
    async with nobox(simulator_url, None) as client:
        expected = await client.complete(TOKEN, request)
        expected_models = await client.list_models(TOKEN)
    async with nobox(simulator_url, FastTransport()) as client:
        completion = await client.complete(TOKEN, request)
        models = await client.list_models(TOKEN)

    assert completion.text == expected.text
    assert "café culture" in completion.text
    assert (completion.usage, completion.finish_reason) == (expected.usage, expected.finish_reason)
    assert models == expected_models


async def test_cut_connection_mid_stream_raises_incomplete_stream(simulator_url: str) -> None:
    texts: list[str] = []
    async with nobox(simulator_url, FastTransport(), retry=NO_RETRY) as client:
        with pytest.raises(IncompleteStream):
            async for item in client.stream_chat(TOKEN, hello("sim/cut")):
                assert isinstance(item, Delta)
                texts.append(item.text)
    assert len(texts) == 3  # the simulator cuts after three deltas


async def test_upstream_errors_keep_their_meaning(simulator_url: str) -> None:
    from chat.nobox import InvalidToken, UpstreamError

    async with nobox(simulator_url, FastTransport(), retry=NO_RETRY) as client:
        with pytest.raises(InvalidToken):
            await client.complete("invalid-token", hello("openai/gpt-4o"))
        with pytest.raises(UpstreamError):
            await stream_all(client, hello("sim/html-error"))


async def test_closed_port_raises_connection_failed() -> None:
    url = f"http://127.0.0.1:{free_port()}/_f_"
    async with nobox(url, FastTransport(), retry=NO_RETRY) as client:
        with pytest.raises(ConnectionFailed):
            await stream_all(client, hello("openai/gpt-4o"))


# --- tiny scripted servers ------------------------------------------------------------------


@dataclass
class Tiny:
    url: str
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)  # a client went away
    handlers: set[asyncio.Task[None]] = field(default_factory=set)


Handler = Callable[[Tiny, bytes, asyncio.StreamWriter], Awaitable[bool]]  # False: hang up


async def read_request(reader: asyncio.StreamReader) -> bytes | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = re.search(rb"(?im)^content-length: *(\d+)", head)
    return head + (await reader.readexactly(int(length.group(1))) if length else b"")


@asynccontextmanager
async def tiny_server(
    handler: Handler, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1"
) -> AsyncIterator[Tiny]:
    tiny = Tiny(url="")

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tiny.connections += 1
        tiny.handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            while (request := await read_request(reader)) is not None:
                tiny.requests.append(request)
                if not await handler(tiny, request, writer):
                    break
        except (ConnectionError, asyncio.CancelledError):
            pass  # the client left, or the test is over (a cancelled handler would be logged)
        finally:
            tiny.closed.set()
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    tiny.url = f"{'https' if tls else 'http'}://{host}:{port}"
    async with server:
        yield tiny
        for task in tiny.handlers:
            task.cancel()
        await asyncio.gather(*tiny.handlers)


def scripted(*parts: bytes | float, close: bool = False) -> Handler:
    """Write the parts in turn (a float is a pause, so the client reads them separately)."""

    async def handler(tiny: Tiny, request: bytes, writer: asyncio.StreamWriter) -> bool:
        for part in parts:
            if isinstance(part, float):
                await asyncio.sleep(part)
            else:
                writer.write(part)
                await writer.drain()
        return not close

    return handler


def chunk(data: bytes, extension: bytes = b"") -> bytes:
    return b"%X%s\r\n%s\r\n" % (len(data), extension, data)


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"


async def fetch(tiny: Tiny, transport: FastTransport, **kwargs) -> tuple[httpx.Response, bytes]:
    async with httpx.AsyncClient(transport=transport) as http:
        response = await http.get(tiny.url + "/", **kwargs)
    return response, response.content


async def pieces(transport: FastTransport, url: str) -> list[bytes]:
    async with (
        httpx.AsyncClient(transport=transport) as http,
        http.stream("GET", url) as response,
    ):
        return [piece async for piece in response.aiter_bytes()]


async def test_decodes_hex_sizes_extensions_trailers_and_splits_across_reads() -> None:
    body = b"x" * 26
    handler = scripted(
        CHUNKED_HEAD,
        b"1a;name=value\r\n" + body[:10],  # lower-case hex with an extension; data split
        0.02,
        body[10:] + b"\r",  # CRLF split
        0.02,
        b"\n" + chunk(b"hello", b" ; a=b") + b"0",  # terminator size split from its CRLF
        0.02,
        b"\r\nTrailer-Field: ignored\r\n\r\n",
    )
    async with tiny_server(handler) as tiny:
        received = await pieces(FastTransport(), tiny.url)
    assert b"".join(received) == body + b"hello"
    assert received[0] == body[:10]  # handed over before the rest of its chunk arrived


async def test_hands_each_piece_over_as_soon_as_it_arrives() -> None:
    taken = asyncio.Event()

    async def handler(tiny: Tiny, request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(CHUNKED_HEAD + chunk(b"data: first\n\n"))
        await asyncio.wait_for(taken.wait(), 5)  # the rest only once the client has the first
        writer.write(chunk(b"data: second\n\n") + b"0\r\n\r\n")
        return True

    async with (
        tiny_server(handler) as tiny,
        httpx.AsyncClient(transport=FastTransport()) as http,
        http.stream("GET", tiny.url) as response,
    ):
        stream = response.aiter_bytes()
        assert await anext(stream) == b"data: first\n\n"
        taken.set()
        assert [piece async for piece in stream] == [b"data: second\n\n"]


async def test_reads_content_length_and_until_close_bodies() -> None:
    sized = scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello", 0.02, b" world")
    until_close = scripted(b"HTTP/1.1 200 OK\r\n\r\nall of", 0.02, b" it", close=True)
    async with tiny_server(sized) as tiny:
        response, body = await fetch(tiny, FastTransport())
    assert (response.status_code, body) == (200, b"hello world")
    async with tiny_server(until_close) as tiny:
        response, body = await fetch(tiny, FastTransport())
    assert body == b"all of it"


async def test_gzip_bodies_are_decoded_by_httpx() -> None:
    packed = gzip.compress(b"squeezed " * 50)
    head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(packed)
    async with tiny_server(scripted(head + packed)) as tiny:
        _, body = await fetch(tiny, FastTransport())
    assert body == b"squeezed " * 50


async def test_skips_interim_responses() -> None:
    handler = scripted(
        b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + CHUNKED_HEAD + b"0\r\n\r\n"
    )
    async with tiny_server(handler) as tiny:
        response, body = await fetch(tiny, FastTransport())
    assert (response.status_code, body) == (200, b"")


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n",
        b"ICY 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\nabcd",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        CHUNKED_HEAD + b"0x5\r\nhello\r\n0\r\n\r\n",
        CHUNKED_HEAD + b"5\r\nhelloXX0\r\n\r\n",
    ],
    ids=[
        "status",
        "version",
        "folded",
        "no-colon",
        "lengths",
        "negative",
        "hex-prefix",
        "no-crlf",
    ],
)
async def test_malformed_responses_raise_remote_protocol_error(reply: bytes) -> None:
    async with tiny_server(scripted(reply)) as tiny:
        with pytest.raises(httpx.RemoteProtocolError):
            await fetch(tiny, FastTransport())


async def test_a_body_cut_short_raises_a_transport_error() -> None:
    handler = scripted(CHUNKED_HEAD + chunk(b"data: partial\n\n"), close=True)
    async with tiny_server(handler) as tiny:
        with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
            await fetch(tiny, FastTransport())


async def test_a_sized_body_cut_short_raises_a_transport_error() -> None:
    handler = scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf", close=True)
    async with tiny_server(handler) as tiny:
        with pytest.raises(httpx.RemoteProtocolError, match="complete message body"):
            await fetch(tiny, FastTransport())


async def test_sends_the_request_httpx_prepared_asking_for_identity() -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    async with (
        tiny_server(scripted(ok)) as tiny,
        httpx.AsyncClient(transport=FastTransport()) as http,
    ):
        await http.post(tiny.url + "/v1/x?y=1", json={"a": 1}, headers={"X-Key": "k"})
        await http.get(tiny.url + "/", headers={"Accept-Encoding": "br"})
    post, get = tiny.requests
    head, body = post.split(b"\r\n\r\n")
    assert head.startswith(b"POST /v1/x?y=1 HTTP/1.1\r\n")
    assert b"\r\nHost: 127.0.0.1:" in head and b"\r\nX-Key: k" in head
    assert b"\r\nAccept-Encoding: identity" in head
    assert b"\r\nContent-Length: %d" % len(body) in head and body == b'{"a":1}'
    assert b"\r\nAccept-Encoding: br" in get  # the caller's own choice stands


async def test_a_token_with_control_characters_is_never_sent() -> None:
    async with (
        tiny_server(scripted(b"")) as tiny,
        nobox(tiny.url, FastTransport(), retry=NO_RETRY) as client,
    ):
        with pytest.raises(UnsendableToken):
            await client.complete("sk-abc\x01def", hello("openai/gpt-4o"))
    assert tiny.connections == 0


# --- the pool -------------------------------------------------------------------------------

SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
)
DELTA = b'data: {"choices":[{"index":0,"delta":{"content":"word "}}]}\n\n'
DONE = b"data: [DONE]\n\n"


def sse_reply(deltas: int) -> bytes:
    return SSE_HEAD + chunk(DELTA) * deltas + chunk(DONE) + b"0\r\n\r\n"


async def test_keep_alive_reuses_one_connection_for_sequential_requests() -> None:
    models = b'{"data":[{"id":"m"}]}'
    json_reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    replies = iter([sse_reply(3), json_reply % len(models) + models, sse_reply(2)])

    async def handler(tiny: Tiny, request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(next(replies))
        return True

    async with tiny_server(handler) as tiny, nobox(tiny.url, FastTransport()) as client:
        first, _ = await stream_all(client, hello("m"))
        assert [model.id for model in await client.list_models(TOKEN)] == ["m"]
        second, _ = await stream_all(client, hello("m"))
    assert (len(first), len(second)) == (3, 2)
    assert (tiny.connections, len(tiny.requests)) == (1, 3)


async def test_idle_connections_expire() -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    async with (
        tiny_server(scripted(ok)) as tiny,
        httpx.AsyncClient(transport=FastTransport(keepalive_expiry=0.0)) as http,
    ):
        assert (await http.get(tiny.url)).text == "ok"
        assert (await http.get(tiny.url)).text == "ok"
    assert (tiny.connections, len(tiny.requests)) == (2, 2)


async def test_connection_close_is_honoured() -> None:
    reply = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    async with tiny_server(scripted(reply, close=True)) as tiny:
        transport = FastTransport()
        async with httpx.AsyncClient(transport=transport) as http:
            assert (await http.get(tiny.url)).text == "ok"
            assert (await http.get(tiny.url)).text == "ok"
    assert tiny.connections == 2


async def test_a_stale_keep_alive_connection_is_retried_once_on_a_new_one() -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    answered: set[asyncio.StreamWriter] = set()

    async def answer_once_per_connection(tiny: Tiny, request: bytes, writer) -> bool:
        # the second request of a connection finds it closed, as when a server's keep-alive
        # timeout races with our request
        if writer in answered:
            return False
        answered.add(writer)
        writer.write(ok)
        return True

    async with (
        tiny_server(answer_once_per_connection) as tiny,
        httpx.AsyncClient(transport=FastTransport()) as http,
    ):
        assert (await http.get(tiny.url)).text == "ok"
        assert (await http.get(tiny.url)).text == "ok"  # stale, then a new connection
    assert (tiny.connections, len(tiny.requests)) == (2, 3)


async def test_a_fresh_connection_that_drops_the_request_is_not_retried() -> None:
    async with (
        tiny_server(scripted(close=True)) as tiny,
        nobox(tiny.url, FastTransport(), retry=NO_RETRY) as client,
    ):
        with pytest.raises(ConnectionFailed):
            await client.complete(TOKEN, hello("m"))
    assert (tiny.connections, len(tiny.requests)) == (1, 1)


async def endless(tiny: Tiny, request: bytes, writer: asyncio.StreamWriter) -> bool:
    writer.write(SSE_HEAD)
    while True:  # until the client goes: then drain raises
        writer.write(chunk(DELTA))
        await writer.drain()
        await asyncio.sleep(0.01)


async def test_stopping_a_stream_closes_the_upstream_connection_at_once() -> None:
    async with tiny_server(endless) as tiny, nobox(tiny.url, FastTransport()) as client:
        async with aclosing(client.stream_chat(TOKEN, hello("m"))) as stream:
            for _ in range(3):
                assert isinstance(await anext(stream), Delta)
        await asyncio.wait_for(tiny.closed.wait(), 1.0)


async def test_a_full_pool_times_out_as_a_connect_timeout() -> None:
    options = {"timeouts": Timeouts(connect=0.2), "retry": NO_RETRY}
    async with (
        tiny_server(endless) as tiny,
        nobox(tiny.url, FastTransport(max_connections=1), **options) as client,
        aclosing(client.stream_chat(TOKEN, hello("m"))) as holding,
    ):
        await anext(holding)
        with pytest.raises(NoboxTimeout) as raised:
            await client.complete(TOKEN, hello("m"))
    assert raised.value.phase == "connect"
    assert tiny.connections == 1


@dataclass(frozen=True)
class Certificate:
    server: ssl.SSLContext
    client: ssl.SSLContext  # trusts only this certificate


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1 (and no other name)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    client = ssl.create_default_context(cafile=folder / "cert.pem")
    return Certificate(server, client)


async def test_streams_over_tls(certificate: Certificate) -> None:
    async with (
        tiny_server(scripted(sse_reply(4)), tls=certificate.server) as tiny,
        nobox(tiny.url, FastTransport(ssl_context=certificate.client)) as client,
    ):
        first, _ = await stream_all(client, hello("m"))
        second, _ = await stream_all(client, hello("m"))
    assert first == second == ["word "] * 4
    assert tiny.connections == 1


async def test_tls_refuses_a_certificate_for_another_name(certificate: Certificate) -> None:
    async with (
        tiny_server(scripted(sse_reply(1)), tls=certificate.server, host="localhost") as tiny,
        nobox(tiny.url, FastTransport(ssl_context=certificate.client), retry=NO_RETRY) as client,
    ):
        with pytest.raises(ConnectionFailed, match="CERTIFICATE_VERIFY_FAILED"):
            await stream_all(client, hello("m"))


# --- the decoder alone ------------------------------------------------------------------------


def test_chunked_decoder_survives_byte_by_byte_delivery() -> None:
    wire = chunk(b"data: one\n\n", b";ext") + chunk(b"x" * 300) + b"0\r\nT: v\r\n\r\n"
    decoder = ChunkedDecoder()
    received = b"".join(piece for i in range(len(wire)) for piece in decoder.feed(wire[i : i + 1]))
    assert received == b"data: one\n\n" + b"x" * 300
    assert decoder.done and decoder.trailing == b""


def test_chunked_decoder_reports_bytes_after_the_terminator() -> None:
    decoder = ChunkedDecoder()
    assert decoder.feed(chunk(b"abc") + b"0\r\n\r\nHTTP/1.1") == [b"abc"]
    assert decoder.trailing == b"HTTP/1.1"


def test_chunked_decoder_refuses_an_endless_size_line() -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        ChunkedDecoder().feed(b"1" * 5000)


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.paused = False

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


async def test_a_slow_reader_makes_the_connection_stop_reading_from_the_socket() -> None:
    connection = _Connection()
    socket = RecordingTransport()
    connection.connection_made(socket)
    for _ in range(MAX_BUFFERED // 1000 + 1):
        connection.get_buffer(-1)[:1000] = b"x" * 1000
        connection.buffer_updated(1000)
    assert socket.paused
    assert len(await connection.read()) > MAX_BUFFERED
    assert not socket.paused


# --- the app's wiring -----------------------------------------------------------------------


def test_the_app_uses_fast_transport_unless_turned_off(settings) -> None:
    from chat.upstream import _transport

    assert isinstance(_transport(), FastTransport)
    settings.NOBOX_FAST_TRANSPORT = False
    assert _transport() is None
