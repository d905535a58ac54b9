from __future__ import annotations

import asyncio
import json
from contextlib import aclosing
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest

from chat.nobox import (
    BadRequest,
    ChatRequest,
    Completed,
    Completion,
    ConnectionFailed,
    Delta,
    IncompleteStream,
    InsufficientFunds,
    InvalidToken,
    MalformedResponse,
    ModelInfo,
    ModelNotFound,
    NoboxClient,
    NoboxError,
    NoboxTimeout,
    Price,
    RateLimited,
    RetryPolicy,
    Timeouts,
    UpstreamError,
    Usage,
)
from chat.nobox.errors import parse_retry_after

TOKEN = "nbx-SECRET-4f7a9c2e"
BASE = "https://nobox.test/_f_"
CHAT_URL = BASE + "/v1/chat/completions"
HELLO = ChatRequest(model="openai/gpt-4o", messages=[{"role": "user", "content": "Hi"}])
NO_RETRY = RetryPolicy(attempts=1)


# --- a scripted upstream, spoken to through httpx.MockTransport --------------------------


@dataclass
class Pause:
    seconds: float


class Body(httpx.AsyncByteStream):
    """A response body delivered chunk by chunk, with optional pauses and a failure."""

    def __init__(self, *parts: bytes | Pause | Exception) -> None:
        self.parts = parts
        self.closed = False

    async def __aiter__(self):
        for part in self.parts:
            if isinstance(part, Pause):
                await asyncio.sleep(part.seconds)
            elif isinstance(part, Exception):
                raise part
            else:
                yield part

    async def aclose(self) -> None:
        self.closed = True


class Upstream:
    """Answers the n-th request with the n-th scripted reply and records every request."""

    def __init__(self, *replies: httpx.Response | Exception | Pause) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        reply = self.replies[len(self.requests) - 1]
        if isinstance(reply, Pause):  # a server that answers nothing, not even headers
            await asyncio.sleep(reply.seconds)
            raise AssertionError("the client should have given up waiting")
        if isinstance(reply, Exception):
            raise reply
        return reply

    def body(self, index: int = 0) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.requests[index].content)
        return body


class Sleeps:
    """Stands in for asyncio.sleep between retries: records the delays, waits for none."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def chunk(text=None, *, finish=None, role=None, usage=None, choices=True) -> dict[str, Any]:
    delta = {}
    if role:
        delta["role"] = role
    if text is not None:
        delta["content"] = text
    data: dict[str, Any] = {
        "id": "chatcmpl-42",
        "object": "chat.completion.chunk",
        "model": "openai/gpt-4o",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}] if choices else [],
    }
    if usage is not None:
        data["usage"] = usage
    return data


def event(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {data}\n\n".encode()


USAGE = {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}


def hello_stream(*, usage: bool = True) -> list[bytes]:
    parts = [
        event(chunk("", role="assistant")),
        event(chunk("Hel")),
        event(chunk("lo")),
        event(chunk(finish="stop")),
    ]
    if usage:
        parts.append(event(chunk(choices=False, usage=USAGE)))
    return parts + [event("[DONE]")]


def sse(*parts: bytes | Pause | Exception, status: int = 200) -> httpx.Response:
    return httpx.Response(
        status, headers={"Content-Type": "text/event-stream"}, stream=Body(*parts)
    )


def error(status: int, type_: str | None, message: str = "nope", **headers: str):
    body = {"error": {"message": message, **({"type": type_} if type_ else {})}}
    return httpx.Response(status, json=body, headers=headers)


def html(status: int) -> httpx.Response:
    page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    return httpx.Response(status, content=page, headers={"Content-Type": "text/html"})


HELLO_DONE = [
    Delta("Hel"),
    Delta("lo"),
    Completed(
        finish_reason="stop",
        usage=Usage(prompt_tokens=9, completion_tokens=2, total_tokens=11),
        model="openai/gpt-4o",
        completion_id="chatcmpl-42",
    ),
]


@pytest.fixture
async def nobox():
    """Builds a NoboxClient over a scripted upstream; closes the http clients afterwards."""
    opened: list[httpx.AsyncClient] = []

    def make(upstream: Upstream, **options) -> NoboxClient:
        http = httpx.AsyncClient(transport=httpx.MockTransport(upstream))
        opened.append(http)
        options.setdefault("sleep", Sleeps())
        options.setdefault("rand", lambda: 0.5)
        return NoboxClient(options.pop("base_url", BASE), http, **options)

    yield make
    for http in opened:
        await http.aclose()


async def collect(stream) -> list[Delta | Completed]:
    return [item async for item in stream]


async def collect_until_error(stream) -> tuple[list[Delta | Completed], NoboxError]:
    items = []
    with pytest.raises(NoboxError) as raised:
        async for item in stream:
            items.append(item)
    assert TOKEN not in str(raised.value)
    assert TOKEN not in repr(raised.value)
    return items, raised.value


# --- streaming ---------------------------------------------------------------------------


async def test_it_streams_deltas_then_completed_with_usage(nobox):
    upstream = Upstream(sse(*hello_stream()))
    assert await collect(nobox(upstream).stream_chat(TOKEN, HELLO)) == HELLO_DONE


async def test_it_completes_without_usage_when_upstream_sends_none(nobox):
    upstream = Upstream(sse(*hello_stream(usage=False)))
    items = await collect(nobox(upstream).stream_chat(TOKEN, HELLO))
    assert items[-1] == Completed("stop", None, "openai/gpt-4o", "chatcmpl-42")


async def test_a_stream_cut_into_3_byte_pieces_with_crlf_yields_the_same_text(nobox):
    raw = b"".join(
        [event(chunk("Grüße ")), event(chunk("🙂")), event(chunk(finish="stop")), event("[DONE]")]
    ).replace(b"\n", b"\r\n")
    upstream = Upstream(sse(*(raw[i : i + 3] for i in range(0, len(raw), 3))))
    items = await collect(nobox(upstream).stream_chat(TOKEN, HELLO))
    assert items[:2] == [Delta("Grüße "), Delta("🙂")]
    assert isinstance(items[2], Completed) and items[2].finish_reason == "stop"


async def test_keep_alive_comments_are_not_text(nobox):
    upstream = Upstream(sse(b": PROCESSING\n\n", *hello_stream()))
    assert await collect(nobox(upstream).stream_chat(TOKEN, HELLO)) == HELLO_DONE


async def test_it_sends_the_openai_stream_request(nobox):
    upstream = Upstream(sse(*hello_stream()))
    await collect(nobox(upstream).stream_chat(TOKEN, HELLO))
    request = upstream.requests[0]
    assert request.method == "POST"
    assert str(request.url) == CHAT_URL
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "text/event-stream"
    assert upstream.body() == {
        "model": "openai/gpt-4o",
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def test_it_passes_options_and_content_parts_through_untouched(nobox):
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                {"type": "input_audio", "input_audio": {"data": "UklGR", "format": "wav"}},
            ],
        },
    ]
    request = ChatRequest("sim/echo", messages, temperature=0.0, max_tokens=50)
    upstream = Upstream(sse(*hello_stream()))
    await collect(nobox(upstream, include_usage=False).stream_chat(TOKEN, request))
    assert upstream.body() == {
        "model": "sim/echo",
        "messages": messages,
        "temperature": 0.0,
        "max_tokens": 50,
        "stream": True,
    }


async def test_a_trailing_slash_in_the_base_url_is_tolerated(nobox):
    upstream = Upstream(sse(*hello_stream()))
    await collect(nobox(upstream, base_url=BASE + "/").stream_chat(TOKEN, HELLO))
    assert str(upstream.requests[0].url) == CHAT_URL


async def test_it_never_closes_the_shared_http_client():
    upstream = Upstream(sse(*hello_stream()), httpx.Response(200, json=MODELS), html(502))
    async with httpx.AsyncClient(transport=httpx.MockTransport(upstream)) as http:
        client = NoboxClient(BASE, http, retry=NO_RETRY)
        assert await collect(client.stream_chat(TOKEN, HELLO)) == HELLO_DONE
        assert len(await client.list_models(TOKEN)) == len(MODELS["data"])
        with pytest.raises(UpstreamError):
            await client.complete(TOKEN, HELLO)
        assert not http.is_closed


async def test_stopping_early_releases_the_response(nobox):
    body = Body(*hello_stream())
    upstream = Upstream(httpx.Response(200, stream=body))
    async with aclosing(nobox(upstream).stream_chat(TOKEN, HELLO)) as stream:
        async for item in stream:
            assert item == Delta("Hel")
            break
    assert body.closed


async def test_a_stream_ending_without_done_is_incomplete_after_its_deltas(nobox):
    upstream = Upstream(sse(event(chunk("Hel")), event(chunk("lo"))))
    items, exc = await collect_until_error(nobox(upstream).stream_chat(TOKEN, HELLO))
    assert items == [Delta("Hel"), Delta("lo")]
    assert isinstance(exc, IncompleteStream)
    assert exc.code == "incomplete_stream"
    assert len(upstream.requests) == 1


async def test_a_connection_cut_mid_stream_is_incomplete_after_its_deltas(nobox):
    cut = httpx.RemoteProtocolError("peer closed connection without sending complete message")
    upstream = Upstream(sse(event(chunk("Hel")), event(chunk("lo")), cut))
    items, exc = await collect_until_error(nobox(upstream).stream_chat(TOKEN, HELLO))
    assert items == [Delta("Hel"), Delta("lo")]
    assert isinstance(exc, IncompleteStream)
    assert len(upstream.requests) == 1


@pytest.mark.parametrize(
    ("error_type", "expected"),
    [
        ("upstream_error", UpstreamError),
        ("something_new", UpstreamError),
        ("insufficient_funds", InsufficientFunds),
    ],
)
async def test_an_error_object_inside_the_stream_raises_after_its_deltas(
    nobox, error_type, expected
):
    failure = {"error": {"type": error_type, "message": "provider fell over"}}
    upstream = Upstream(sse(event(chunk("Hel")), event(failure)), sse(*hello_stream()))
    items, exc = await collect_until_error(nobox(upstream).stream_chat(TOKEN, HELLO))
    assert items == [Delta("Hel")]
    assert type(exc) is expected
    assert (exc.upstream_type, exc.message, exc.status) == (error_type, "provider fell over", None)
    assert len(upstream.requests) == 1


async def test_an_error_object_as_the_first_event_is_raised_not_retried(nobox):
    failure = {"error": {"type": "upstream_error", "message": "provider fell over"}}
    upstream = Upstream(sse(event(failure)), sse(*hello_stream()))
    items, exc = await collect_until_error(nobox(upstream).stream_chat(TOKEN, HELLO))
    assert (items, type(exc), len(upstream.requests)) == ([], UpstreamError, 1)


async def test_undecodable_json_in_the_stream_is_malformed(nobox):
    upstream = Upstream(sse(event(chunk("Hel")), b"data: {not json\n\n", event("[DONE]")))
    items, exc = await collect_until_error(nobox(upstream).stream_chat(TOKEN, HELLO))
    assert items == [Delta("Hel")]
    assert isinstance(exc, MalformedResponse)


async def test_a_json_error_body_with_status_200_is_mapped(nobox):
    failure = {"error": {"type": "insufficient_funds", "message": "Wallet empty"}}
    upstream = Upstream(httpx.Response(200, json=failure))
    items, exc = await collect_until_error(nobox(upstream).stream_chat(TOKEN, HELLO))
    assert (items, type(exc), exc.message) == ([], InsufficientFunds, "Wallet empty")


async def test_a_plain_json_completion_to_a_stream_request_is_still_delivered(nobox):
    upstream = Upstream(httpx.Response(200, json=completion_body("All at once")))
    items = await collect(nobox(upstream).stream_chat(TOKEN, HELLO))
    assert items == [Delta("All at once"), Completed("stop", None, "openai/gpt-4o", "cmpl-7")]


# --- HTTP errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type", "expected", "code"),
    [
        (400, "insufficient_funds", InsufficientFunds, "insufficient_funds"),
        (400, "invalid_request_error", BadRequest, "bad_request"),
        (400, None, BadRequest, "bad_request"),
        (401, "invalid_token", InvalidToken, "invalid_token"),
        (401, "authentication_error", InvalidToken, "invalid_token"),
        (403, None, InvalidToken, "invalid_token"),
        (404, "model_not_found", ModelNotFound, "model_not_found"),
        (429, "rate_limit_exceeded", RateLimited, "rate_limited"),
        (429, "rate_limited", RateLimited, "rate_limited"),
        (500, "server_error", UpstreamError, "upstream_error"),
        (503, None, UpstreamError, "upstream_error"),
        # The error type wins over the status.
        (402, "insufficient_funds", InsufficientFunds, "insufficient_funds"),
        (400, "model_not_found", ModelNotFound, "model_not_found"),
    ],
)
async def test_documented_errors_map_to_typed_errors(nobox, status, error_type, expected, code):
    upstream = Upstream(error(status, error_type, "Insufficient wallet balance"))
    client = nobox(upstream, retry=NO_RETRY)
    items, exc = await collect_until_error(client.stream_chat(TOKEN, HELLO))
    assert items == []
    assert type(exc) is expected
    assert (exc.code, exc.status, exc.upstream_type) == (code, status, error_type)
    assert exc.message == "Insufficient wallet balance"


@pytest.mark.parametrize(
    "body",
    [{"error": "Insufficient wallet balance"}, {"message": "Insufficient wallet balance"}]
    + [
        {"detail": "Insufficient wallet balance"},
        {"message": "", "detail": "Insufficient wallet balance"},
    ],
)
async def test_the_message_is_found_in_the_other_error_shapes(nobox, body):
    upstream = Upstream(httpx.Response(402, json=body))
    _, exc = await collect_until_error(nobox(upstream, retry=NO_RETRY).stream_chat(TOKEN, HELLO))
    assert (type(exc), exc.status, exc.message) == (BadRequest, 402, "Insufficient wallet balance")


async def test_openai_style_error_code_selects_the_class(nobox):
    body = {"error": {"type": "invalid_request_error", "code": "model_not_found", "message": "?"}}
    upstream = Upstream(httpx.Response(404, json=body))
    _, exc = await collect_until_error(nobox(upstream).stream_chat(TOKEN, HELLO))
    assert (type(exc), exc.upstream_type) == (ModelNotFound, "invalid_request_error")


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, BadRequest),
        (401, InvalidToken),
        (404, ModelNotFound),
        (429, RateLimited),
        (500, UpstreamError),
        (502, UpstreamError),
    ],
)
async def test_an_html_error_page_maps_by_status(nobox, status, expected):
    upstream = Upstream(html(status))
    _, exc = await collect_until_error(nobox(upstream, retry=NO_RETRY).stream_chat(TOKEN, HELLO))
    assert type(exc) is expected
    assert exc.status == status
    assert "non-JSON" in exc.message
    assert "<html>" not in exc.message


async def test_an_unexpected_redirect_is_malformed(nobox):
    upstream = Upstream(httpx.Response(302, headers={"Location": "https://login.test/"}))
    _, exc = await collect_until_error(nobox(upstream).stream_chat(TOKEN, HELLO))
    assert (type(exc), exc.status) == (MalformedResponse, 302)


async def test_a_token_echoed_by_upstream_is_redacted(nobox):
    upstream = Upstream(error(401, "invalid_token", f"Token {TOKEN} is not valid"))
    _, exc = await collect_until_error(nobox(upstream).stream_chat(TOKEN, HELLO))
    assert exc.message == "Token [redacted] is not valid"


async def test_a_token_quoted_by_a_connection_error_is_redacted(nobox):
    failure = httpx.ConnectError(f"Illegal header value b'Bearer {TOKEN}'")
    upstream = Upstream(failure)
    _, exc = await collect_until_error(nobox(upstream, retry=NO_RETRY).stream_chat(TOKEN, HELLO))
    assert isinstance(exc, ConnectionFailed)
    assert "[redacted]" in exc.message
    assert exc.__cause__ is None


# --- retries -----------------------------------------------------------------------------


async def test_a_429_waits_for_retry_after_then_succeeds(nobox):
    sleeps = Sleeps()
    upstream = Upstream(
        error(429, "rate_limit_exceeded", **{"Retry-After": "2"}), sse(*hello_stream())
    )
    items = await collect(nobox(upstream, sleep=sleeps).stream_chat(TOKEN, HELLO))
    assert items == HELLO_DONE
    assert sleeps.delays == [2.0]
    assert len(upstream.requests) == 2


async def test_a_429_without_retry_after_backs_off_with_jitter(nobox):
    sleeps = Sleeps()
    upstream = Upstream(error(429, "rate_limit_exceeded"), sse(*hello_stream()))
    client = nobox(upstream, sleep=sleeps, rand=lambda: 0.5)
    assert await collect(client.stream_chat(TOKEN, HELLO)) == HELLO_DONE
    assert sleeps.delays == [0.25]  # 0.5 (rand) * 0.5 (base) * 2**0


async def test_a_retry_after_beyond_the_limit_raises_rate_limited_at_once(nobox):
    sleeps = Sleeps()
    upstream = Upstream(error(429, "rate_limit_exceeded", **{"Retry-After": "120"}))
    _, exc = await collect_until_error(nobox(upstream, sleep=sleeps).stream_chat(TOKEN, HELLO))
    assert isinstance(exc, RateLimited)
    assert exc.retry_after == 120.0
    assert (sleeps.delays, len(upstream.requests)) == ([], 1)


async def test_server_errors_are_retried_with_growing_backoff_then_succeed(nobox):
    sleeps = Sleeps()
    upstream = Upstream(error(500, None), html(502), sse(*hello_stream()))
    client = nobox(upstream, sleep=sleeps, rand=lambda: 1.0)
    assert await collect(client.stream_chat(TOKEN, HELLO)) == HELLO_DONE
    assert sleeps.delays == [0.5, 1.0]
    assert len(upstream.requests) == 3


async def test_backoff_is_capped_at_max_delay(nobox):
    sleeps = Sleeps()
    policy = RetryPolicy(attempts=4, base_delay=3.0, max_delay=5.0)
    upstream = Upstream(error(500, None), error(500, None), error(500, None), sse(*hello_stream()))
    client = nobox(upstream, sleep=sleeps, rand=lambda: 1.0, retry=policy)
    await collect(client.stream_chat(TOKEN, HELLO))
    assert sleeps.delays == [3.0, 5.0, 5.0]


async def test_attempts_are_bounded(nobox):
    sleeps = Sleeps()
    upstream = Upstream(
        error(500, None, "down"), error(500, None, "down"), error(500, None, "down")
    )
    _, exc = await collect_until_error(nobox(upstream, sleep=sleeps).stream_chat(TOKEN, HELLO))
    assert (type(exc), exc.message) == (UpstreamError, "down")
    assert len(upstream.requests) == 3
    assert len(sleeps.delays) == 2


async def test_a_connection_error_is_retried(nobox):
    upstream = Upstream(httpx.ConnectError("Connection refused"), sse(*hello_stream()))
    assert await collect(nobox(upstream).stream_chat(TOKEN, HELLO)) == HELLO_DONE
    assert len(upstream.requests) == 2


async def test_a_connection_refused_every_time_is_connection_failed(nobox):
    upstream = Upstream(*(httpx.ConnectError("Connection refused") for _ in range(3)))
    _, exc = await collect_until_error(nobox(upstream).stream_chat(TOKEN, HELLO))
    assert (type(exc), exc.code) == (ConnectionFailed, "connection_failed")
    assert "Connection refused" in exc.message
    assert len(upstream.requests) == 3


async def test_a_connect_timeout_is_retried(nobox):
    upstream = Upstream(httpx.ConnectTimeout("timed out"), sse(*hello_stream()))
    assert await collect(nobox(upstream).stream_chat(TOKEN, HELLO)) == HELLO_DONE
    assert len(upstream.requests) == 2


async def test_a_connect_timeout_every_time_is_a_connect_timeout(nobox):
    upstream = Upstream(*(httpx.ConnectTimeout("timed out") for _ in range(3)))
    _, exc = await collect_until_error(nobox(upstream).stream_chat(TOKEN, HELLO))
    assert isinstance(exc, NoboxTimeout)
    assert (exc.phase, exc.code) == ("connect", "timeout")


async def test_a_cut_before_any_text_is_retried(nobox):
    cut = httpx.ReadError("connection reset")
    upstream = Upstream(sse(event(chunk("", role="assistant")), cut), sse(*hello_stream()))
    assert await collect(nobox(upstream).stream_chat(TOKEN, HELLO)) == HELLO_DONE
    assert len(upstream.requests) == 2


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(400, "insufficient_funds"), (400, None), (401, "invalid_token"), (404, "model_not_found")],
)
async def test_client_errors_are_never_retried(nobox, status, error_type):
    sleeps = Sleeps()
    upstream = Upstream(error(status, error_type), sse(*hello_stream()))
    _, exc = await collect_until_error(nobox(upstream, sleep=sleeps).stream_chat(TOKEN, HELLO))
    assert exc.status == status
    assert (len(upstream.requests), sleeps.delays) == (1, [])


async def test_nothing_is_retried_after_the_first_delta(nobox):
    cut = httpx.RemoteProtocolError("peer closed connection")
    upstream = Upstream(sse(event(chunk("Hel")), cut), sse(*hello_stream()))
    items, exc = await collect_until_error(nobox(upstream).stream_chat(TOKEN, HELLO))
    assert items == [Delta("Hel")]
    assert isinstance(exc, IncompleteStream)
    assert len(upstream.requests) == 1


def test_retry_after_accepts_seconds_and_http_dates():
    now = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
    assert parse_retry_after("3", now) == 3.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", now) == 30.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


# --- timeouts ----------------------------------------------------------------------------


def quick(**overrides: float) -> Timeouts:
    values = {"connect": 1.0, "first_byte": 1.0, "stall": 1.0, "total": 5.0} | overrides
    return Timeouts(**values)


async def test_slow_headers_hit_the_first_byte_timeout_without_retry(nobox):
    upstream = Upstream(Pause(5), sse(*hello_stream()))
    client = nobox(upstream, timeouts=quick(first_byte=0.05))
    _, exc = await collect_until_error(client.stream_chat(TOKEN, HELLO))
    assert isinstance(exc, NoboxTimeout) and exc.phase == "first_byte"
    assert len(upstream.requests) == 1


async def test_keep_alives_do_not_count_as_the_first_byte(nobox):
    upstream = Upstream(sse(b": PROCESSING\n\n", Pause(5), *hello_stream()))
    client = nobox(upstream, timeouts=quick(first_byte=0.05))
    _, exc = await collect_until_error(client.stream_chat(TOKEN, HELLO))
    assert isinstance(exc, NoboxTimeout) and exc.phase == "first_byte"


async def test_a_stream_that_goes_quiet_hits_the_stall_timeout(nobox):
    upstream = Upstream(sse(event(chunk("Hel")), b": still here\n\n", Pause(60), event("[DONE]")))
    # The first-byte limit is long: the read timer set for it must come forward to the stall
    # limit once the first event is in (the wait_for only bounds a broken build).
    client = nobox(upstream, timeouts=quick(first_byte=30, stall=0.05, total=60))
    items, exc = await asyncio.wait_for(collect_until_error(client.stream_chat(TOKEN, HELLO)), 10)
    assert items == [Delta("Hel")]
    assert isinstance(exc, NoboxTimeout) and exc.phase == "stall"
    assert len(upstream.requests) == 1


async def test_a_stop_during_a_read_is_a_cancellation_not_a_timeout(nobox):
    upstream = Upstream(sse(event(chunk("Hel")), Pause(60), event("[DONE]")))
    client = nobox(upstream, timeouts=quick(stall=30, total=60))
    received: list[object] = []

    async def read_all() -> None:
        async for item in client.stream_chat(TOKEN, HELLO):
            received.append(item)

    reading = asyncio.create_task(read_all())
    while not received:
        await asyncio.sleep(0.01)
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    assert received == [Delta("Hel")]


async def test_a_slow_consumer_is_not_a_stall(nobox):
    # The short pauses make every read really wait, as it would on a socket.
    upstream = Upstream(sse(*(p for part in hello_stream() for p in (Pause(0.01), part))))
    client = nobox(upstream, timeouts=quick(stall=0.05))
    items = []
    async for item in client.stream_chat(TOKEN, HELLO):
        items.append(item)
        await asyncio.sleep(0.1)
    assert items == HELLO_DONE


async def test_a_steady_but_endless_stream_hits_the_total_timeout(nobox):
    trickle = [part for _ in range(50) for part in (Pause(0.02), event(chunk("x")))]
    upstream = Upstream(sse(*trickle, event("[DONE]")))
    client = nobox(upstream, timeouts=quick(stall=0.5, total=0.15))
    items, exc = await collect_until_error(client.stream_chat(TOKEN, HELLO))
    assert isinstance(exc, NoboxTimeout) and exc.phase == "total"
    assert 0 < len(items) < 50


async def test_a_retry_that_would_outlast_the_total_budget_is_not_attempted(nobox):
    sleeps = Sleeps()
    upstream = Upstream(error(429, "rate_limit_exceeded", **{"Retry-After": "3"}))
    client = nobox(upstream, sleep=sleeps, timeouts=quick(total=2.0))
    _, exc = await collect_until_error(client.stream_chat(TOKEN, HELLO))
    assert isinstance(exc, RateLimited)
    assert (sleeps.delays, len(upstream.requests)) == ([], 1)


# --- non-streaming -----------------------------------------------------------------------


def completion_body(
    text: str | None, finish: str = "stop", usage: dict[str, Any] | None = None
) -> dict[str, Any]:
    body = {
        "id": "cmpl-7",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "openai/gpt-4o",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
        ],
    }
    if usage is not None:
        body["usage"] = usage
    return body


async def test_complete_returns_the_whole_reply(nobox):
    upstream = Upstream(httpx.Response(200, json=completion_body("A haiku", "length", USAGE)))
    completion = await nobox(upstream).complete(TOKEN, HELLO)
    assert completion == Completion(
        text="A haiku",
        finish_reason="length",
        usage=Usage(9, 2, 11),
        model="openai/gpt-4o",
        completion_id="cmpl-7",
    )


async def test_complete_sends_a_non_streaming_request(nobox):
    upstream = Upstream(httpx.Response(200, json=completion_body("ok")))
    await nobox(upstream).complete(TOKEN, ChatRequest("gpt-4o", [], max_tokens=5))
    assert upstream.body() == {"model": "gpt-4o", "messages": [], "max_tokens": 5}
    assert upstream.requests[0].headers["Accept"] == "application/json"
    assert upstream.requests[0].headers["Authorization"] == f"Bearer {TOKEN}"


async def test_complete_treats_null_content_as_an_empty_reply(nobox):
    upstream = Upstream(httpx.Response(200, json=completion_body(None, "content_filter")))
    completion = await nobox(upstream).complete(TOKEN, HELLO)
    assert (completion.text, completion.finish_reason, completion.usage) == (
        "",
        "content_filter",
        None,
    )


async def test_complete_maps_errors_and_retries_like_streaming(nobox):
    upstream = Upstream(html(502), error(400, "insufficient_funds", "Broke"))
    with pytest.raises(InsufficientFunds) as raised:
        await nobox(upstream).complete(TOKEN, HELLO)
    assert raised.value.message == "Broke"
    assert len(upstream.requests) == 2


@pytest.mark.parametrize(
    "content", [b"<html>oops</html>", b'{"choices": []}', b'["not", "an", "object"]']
)
async def test_complete_rejects_a_body_it_cannot_read(nobox, content):
    upstream = Upstream(httpx.Response(200, content=content))
    with pytest.raises(MalformedResponse):
        await nobox(upstream).complete(TOKEN, HELLO)


async def test_a_slow_complete_hits_the_first_byte_timeout(nobox):
    upstream = Upstream(httpx.Response(200, stream=Body(Pause(5), b"{}")))
    with pytest.raises(NoboxTimeout) as raised:
        await nobox(upstream, timeouts=quick(first_byte=0.05)).complete(TOKEN, HELLO)
    assert raised.value.phase == "first_byte"


# --- models ------------------------------------------------------------------------------


MODELS = {
    "data": [
        {
            "id": "openai/gpt-4o",
            "public_id": "gpt-4o",
            "name": "GPT-4o",
            "pricing": {"prompt": "0.0000025", "completion": "0.00001"},
            "context_length": 128000,
        },
        {"id": "sim/echo", "name": "Echo", "pricing": "free", "provider": "Simulated Inc"},
        {"id": "meta/llama-3.3-70b", "context_length": "131072"},
        {"id": "gpt-4o-mini", "context_length": -1},
    ]
}


async def test_list_models_parses_the_data_array_and_keeps_pricing_as_given(nobox):
    upstream = Upstream(httpx.Response(200, json=MODELS))
    models = await nobox(upstream).list_models(TOKEN)
    assert models == [
        ModelInfo(
            id="openai/gpt-4o",
            public_id="gpt-4o",
            name="GPT-4o",
            pricing={"prompt": "0.0000025", "completion": "0.00001"},
            price=Price(Decimal("0.0000025"), Decimal("0.00001")),
            provider="openai",  # from the id
            context_length=128_000,
        ),
        ModelInfo("sim/echo", None, "Echo", "free", Price(Decimal(0), Decimal(0)), "Simulated Inc"),
        ModelInfo(
            "meta/llama-3.3-70b",
            None,
            "meta/llama-3.3-70b",
            None,
            Price(None, None),
            provider="meta",
            context_length=131_072,  # a count as a string is still a count
        ),
        # No provider in a bare id; a context length that is no count is not one.
        ModelInfo("gpt-4o-mini", None, "gpt-4o-mini", None, Price(None, None), None, None),
    ]
    request = upstream.requests[0]
    assert (request.method, str(request.url)) == ("POST", BASE + "/models")
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"


async def test_list_models_maps_an_invalid_token(nobox):
    upstream = Upstream(error(401, "invalid_token", "Invalid token"))
    with pytest.raises(InvalidToken) as raised:
        await nobox(upstream).list_models(TOKEN)
    assert TOKEN not in repr(raised.value)
    assert len(upstream.requests) == 1


@pytest.mark.parametrize("body", [{"models": []}, {"data": [{"name": "no id"}]}, {"data": "x"}])
async def test_list_models_rejects_an_unexpected_shape(nobox, body):
    upstream = Upstream(httpx.Response(200, json=body))
    with pytest.raises(MalformedResponse):
        await nobox(upstream).list_models(TOKEN)
