"""Async client for the Nobox API: OpenAI-compatible chat completions over httpx.

The protocol work (SSE framing, error mapping) lives in pure modules; this one only adds
I/O, deadlines and retries around them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeGuard, TypeVar

import httpx

from .errors import (
    ConnectionFailed,
    IncompleteStream,
    InvalidToken,
    MalformedResponse,
    NoboxError,
    NoboxTimeout,
    RateLimited,
    TimeoutPhase,
    UpstreamError,
    error_from_payload,
    error_from_response,
)
from .sse import SSEDecoder, SSEEvent
from .types import (
    ChatRequest,
    Completed,
    Completion,
    Delta,
    ModelInfo,
    Price,
    RetryPolicy,
    Timeouts,
    Usage,
)
from .types import str_or_none as _str_or_none

logger = logging.getLogger(__name__)

T = TypeVar("T")

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/models"
DEFAULT_TIMEOUTS = Timeouts()
DEFAULT_RETRY = RetryPolicy()


class UnsendableToken(InvalidToken):
    """The token cannot go into an HTTP header (non-ASCII or control characters), so nothing was
    sent. Like a token Nobox rejects, it must be replaced; the message says why."""


UNSENDABLE = (
    "the Nobox token contains characters that cannot be sent in an HTTP header (only printable "
    "ASCII is allowed): copy it again from the Nobox dashboard"
)


class NoboxClient:
    """Talks to one Nobox deployment on behalf of many users (the token is per call).

    ``http`` belongs to the caller: the app keeps one ``httpx.AsyncClient`` per process so
    that every request shares its connection pool, and closes it at shutdown. This class
    never closes it. Timeouts configured on ``http`` are overridden per request.

    Retries happen only before the first ``Delta`` is yielded, and only for 429, 5xx,
    connection failures (including a connection that broke before any text arrived) and
    connect timeouts. Other 4xx, malformed replies, in-stream errors and first-byte or
    stall timeouts are raised at once: the upstream may already be spending the user's
    money on them.
    """

    def __init__(
        self,
        base_url: str,
        http: httpx.AsyncClient,
        *,
        timeouts: Timeouts = DEFAULT_TIMEOUTS,
        retry: RetryPolicy = DEFAULT_RETRY,
        include_usage: bool = True,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._http = http
        self._timeouts = timeouts
        self._retry = retry
        self._include_usage = include_usage
        self._sleep = sleep
        self._rand = rand
        # httpx enforces only the connect phase; the others are asyncio deadlines below,
        # because httpx's read timeout is per socket read, not per SSE event.
        self._httpx_timeout = httpx.Timeout(None, connect=timeouts.connect, pool=timeouts.connect)

    async def list_models(self, token: str) -> list[ModelInfo]:
        payload = await self._retrying(
            lambda clock: self._post_json(token, MODELS_PATH, None, clock)
        )
        return _models_from(payload, token)

    async def complete(self, token: str, request: ChatRequest) -> Completion:
        body = _chat_body(request, stream=False, include_usage=False)
        payload = await self._retrying(lambda clock: self._post_json(token, CHAT_PATH, body, clock))
        return _completion_from(payload, token)

    async def stream_chat(
        self, token: str, request: ChatRequest
    ) -> AsyncGenerator[Delta | Completed, None]:
        """Yield ``Delta`` pieces, then exactly one ``Completed``; or raise a ``NoboxError``.

        Errors can arrive after some deltas (IncompleteStream, an in-stream error, a stall),
        so callers must keep what they already showed. To stop early and release the
        connection at once, iterate inside ``contextlib.aclosing(...)``.
        """
        body = _chat_body(request, stream=True, include_usage=self._include_usage)
        clock = _Clock(self._timeouts)
        attempt = 0
        while True:
            saw_delta = False
            try:
                async with aclosing(self._stream_once(token, body, clock)) as items:
                    async for item in items:
                        saw_delta = saw_delta or isinstance(item, Delta)
                        yield item
                return
            except NoboxError as exc:
                # After a delta the user has seen text; a retry would repeat or contradict it.
                delay = None if saw_delta else self._retry_delay(exc, attempt, clock)
                if delay is None:
                    raise
                await self._pause(exc, delay, attempt)
            attempt += 1

    async def _retrying(self, once: Callable[[_Clock], Awaitable[T]]) -> T:
        clock = _Clock(self._timeouts)
        attempt = 0
        while True:
            try:
                return await once(clock)
            except NoboxError as exc:
                delay = self._retry_delay(exc, attempt, clock)
                if delay is None:
                    raise
                await self._pause(exc, delay, attempt)
            attempt += 1

    def _retry_delay(self, exc: NoboxError, attempt: int, clock: _Clock) -> float | None:
        """Seconds to wait before the next attempt, or None to give up and raise ``exc``.

        ``attempt`` counts from 0 for the attempt that just failed.
        """
        if attempt + 1 >= self._retry.attempts or not _worth_retrying(exc):
            return None
        # Full jitter: spreads out the many chats that hit the same upstream hiccup.
        delay = self._rand() * min(self._retry.max_delay, self._retry.base_delay * 2**attempt)
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            if exc.retry_after > self._retry.max_retry_after:
                return None
            delay = exc.retry_after
        return delay if delay < clock.remaining() else None

    async def _pause(self, exc: NoboxError, delay: float, attempt: int) -> None:
        logger.warning(
            "Nobox call failed (%s, HTTP %s); retry %d of %d in %.2fs",
            exc.code,
            exc.status,
            attempt + 1,
            self._retry.attempts - 1,
            delay,
        )
        await self._sleep(delay)

    async def _stream_once(
        self, token: str, body: dict[str, Any], clock: _Clock
    ) -> AsyncGenerator[Delta | Completed, None]:
        async with self._send(token, CHAT_PATH, body, clock, stream=True) as response:
            if _is_json(response):
                # Some proxies answer a stream request with one JSON body (often an error).
                payload = await clock.within(_read(response), clock.first_byte, "first_byte")
                completion = _completion_from(_json_body(payload), token)
                if completion.text:
                    yield Delta(completion.text)
                yield _completed(completion)
                return
            async with (
                aclosing(_sse_events(response, clock)) as events,
                aclosing(_stream_items(events, clock, token)) as items,
            ):
                async for item in items:
                    yield item

    async def _post_json(
        self, token: str, path: str, body: dict[str, Any] | None, clock: _Clock
    ) -> Any:
        async with self._send(token, path, body, clock, stream=False) as response:
            raw = await clock.within(_read(response), clock.first_byte, "first_byte")
        return _json_body(raw)

    @asynccontextmanager
    async def _send(
        self,
        token: str,
        path: str,
        body: dict[str, Any] | None,
        clock: _Clock,
        *,
        stream: bool,
    ) -> AsyncIterator[httpx.Response]:
        """Send one attempt; yield the open response only if its status is 2xx."""
        clock.start_attempt()
        try:
            request = self._http.build_request(
                "POST",
                self._base + path,
                content=None if body is None else json.dumps(body).encode(),
                headers=_headers(token, stream=stream),
                timeout=self._httpx_timeout,
            )
        except UnicodeEncodeError:
            # No chaining: the encoding error's repr holds the whole header, token included.
            raise UnsendableToken(UNSENDABLE) from None
        response = await self._connect(request, token, clock)
        try:
            if not response.is_success:
                raise await _error_for(response, token, clock)
            yield response
        finally:
            await response.aclose()

    async def _connect(self, request: httpx.Request, token: str, clock: _Clock) -> httpx.Response:
        sending = self._http.send(request, stream=True)
        try:
            return await clock.within(sending, clock.first_byte, "first_byte")
        except httpx.TimeoutException:
            # Only connect and pool timeouts are set on the request, so this is one of those.
            raise NoboxTimeout("connect") from None
        except httpx.LocalProtocolError:
            # h11 refuses a header value with control characters; ours vary only by the token.
            raise UnsendableToken(UNSENDABLE) from None
        except httpx.TransportError as exc:
            # No chaining: httpx messages can quote request headers, i.e. the token.
            raise ConnectionFailed(
                f"could not reach Nobox ({_describe_failure(exc, token)})"
            ) from None


@dataclass
class _StreamState:
    """What a stream has told us besides text, kept until ``[DONE]``."""

    finish_reason: str | None = None
    usage: Usage | None = None
    model: str | None = None
    completion_id: str | None = None

    def absorb(self, chunk: dict[str, Any]) -> str:
        """Record the metadata of one chunk and return its text ("" if none)."""
        self.model = _str_or_none(chunk.get("model")) or self.model
        self.completion_id = _str_or_none(chunk.get("id")) or self.completion_id
        # With include_usage, usage arrives in a final chunk whose choices list is empty.
        self.usage = _usage_from(chunk.get("usage")) or self.usage
        choice = _first_choice(chunk)
        if choice is None:
            return ""
        self.finish_reason = _str_or_none(choice.get("finish_reason")) or self.finish_reason
        delta = choice.get("delta")
        content = delta.get("content") if isinstance(delta, dict) else None
        return content if isinstance(content, str) else ""

    def completed(self) -> Completed:
        return Completed(
            finish_reason=self.finish_reason,
            usage=self.usage,
            model=self.model,
            completion_id=self.completion_id,
        )


class _Clock:
    """Deadlines for one client call, across all its attempts, on the event loop clock."""

    def __init__(self, timeouts: Timeouts) -> None:
        self._timeouts = timeouts
        self._loop = asyncio.get_running_loop()
        self.total = self._loop.time() + timeouts.total
        self.first_byte = self.total
        self.event_deadline = self.total
        self.event_phase: TimeoutPhase = "total"

    def start_attempt(self) -> None:
        self.first_byte = self._loop.time() + self._timeouts.first_byte
        self.expect_event("first_byte")

    def expect_event(self, phase: TimeoutPhase) -> None:
        """Set the deadline for the next stream event: the attempt's first byte, or a stall."""
        self.event_phase = phase
        self.event_deadline = self.first_byte if phase == "first_byte" else self.next_stall()

    def next_stall(self) -> float:
        return self._loop.time() + self._timeouts.stall

    def remaining(self) -> float:
        return self.total - self._loop.time()

    def event_limit(self) -> tuple[float, TimeoutPhase]:
        """The next stream event's deadline, or the total deadline if that comes first."""
        return self.bounded(self.event_deadline, self.event_phase)

    def bounded(self, deadline: float, phase: TimeoutPhase) -> tuple[float, TimeoutPhase]:
        return (self.total, "total") if self.total <= deadline else (deadline, phase)

    async def within(self, awaitable: Awaitable[T], deadline: float, phase: TimeoutPhase) -> T:
        """Await until ``deadline`` or the total deadline, naming whichever ran out."""
        deadline, phase = self.bounded(deadline, phase)
        try:
            async with asyncio.timeout_at(deadline):
                return await awaitable
        except TimeoutError:
            raise NoboxTimeout(phase) from None


async def _stream_items(
    events: AsyncIterator[SSEEvent], clock: _Clock, token: str
) -> AsyncGenerator[Delta | Completed, None]:
    state = _StreamState()
    clock.expect_event("first_byte")
    async for event in events:
        if event.data == "[DONE]":
            yield state.completed()
            return
        chunk = _json_object(event.data)
        if chunk.get("error") is not None:
            raise error_from_payload(chunk, secret=token)
        text = state.absorb(chunk)
        if text:
            yield Delta(text)
        # Measured from here, after the consumer took the delta: a slow consumer is not a stall.
        clock.expect_event("stall")
    raise IncompleteStream("the Nobox stream ended before the reply was complete")


async def _sse_events(response: httpx.Response, clock: _Clock) -> AsyncGenerator[SSEEvent, None]:
    """Decoded events; the event deadline is enforced on network reads only.

    Events already decoded from a chunk cost no timer, and reads share one lazily re-armed
    timer (`_ReadDeadline`): an asyncio timeout per event, then per read, was most of the
    client's cost. A chunk holding only a comment (keep-alive) produces no event, so it does
    not push the deadline back.
    """
    decoder = SSEDecoder()
    chunks = response.aiter_bytes()
    deadline = _ReadDeadline(clock)
    try:
        while True:
            try:
                chunk = await deadline.read(anext(chunks, None))
            except httpx.TransportError:
                raise IncompleteStream("the connection to Nobox broke mid-reply") from None
            except httpx.DecodingError:
                raise MalformedResponse("Nobox sent a stream that could not be decoded") from None
            if chunk is None:
                break
            for event in decoder.feed(chunk):
                yield event
    finally:
        deadline.close()
    for event in decoder.close():
        yield event


class _ReadDeadline:
    """The clock's event deadline over a stream's reads, kept by one timer for the whole stream.

    The timer is not moved on every read when the deadline moved later (as it does on every
    event): when it fires it looks at the deadline as it is now, and either expires the read
    under way or is set again for the new deadline. It is moved only when the deadline came
    sooner (the first event turns the long first-byte wait into the short stall limit). When no
    read is under way it lapses and the next read sets it.

    Expiring cancels the reading task, as `asyncio.timeout` does, and turns that one
    cancellation (told apart by `uncancel`) into NoboxTimeout; any other cancellation (a stop)
    passes through.
    """

    def __init__(self, clock: _Clock) -> None:
        self._clock = clock
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._reader: asyncio.Task[Any] | None = None
        self._expired: TimeoutPhase | None = None

    async def read(self, awaitable: Awaitable[T]) -> T:
        reader = self._reader = asyncio.current_task()
        assert reader is not None, "reads run in a task"
        deadline = self._clock.event_limit()[0]
        if self._timer is None or self._timer.when() > deadline:
            self.close()
            self._arm(deadline)
        try:
            return await awaitable
        except asyncio.CancelledError:
            if self._expired is not None and reader.uncancel() == 0:
                raise NoboxTimeout(self._expired) from None
            raise
        finally:
            self._reader = None

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _arm(self, deadline: float) -> None:
        self._timer = self._loop.call_at(deadline, self._check)

    def _check(self) -> None:
        self._timer = None
        if self._reader is None:
            return  # no read under way: the next one sets the timer again
        deadline, phase = self._clock.event_limit()
        if self._loop.time() < deadline:
            self._arm(deadline)
        else:
            self._expired = phase
            self._reader.cancel()


async def _read(response: httpx.Response) -> bytes:
    try:
        return await response.aread()
    except httpx.TransportError:
        raise ConnectionFailed("the connection to Nobox broke while reading the reply") from None
    except httpx.DecodingError:
        raise MalformedResponse("Nobox sent a body that could not be decoded") from None


async def _error_for(response: httpx.Response, token: str, clock: _Clock) -> NoboxError:
    try:
        body = await clock.within(response.aread(), clock.first_byte, "first_byte")
    except (httpx.TransportError, httpx.DecodingError):
        body = b""  # the status alone still says what went wrong
    return error_from_response(
        response.status_code,
        body,
        response.headers.get("Retry-After"),
        secret=token,
        now=time.time(),
    )


def _worth_retrying(exc: NoboxError) -> bool:
    if isinstance(exc, NoboxTimeout):
        return exc.phase == "connect"
    if isinstance(exc, UpstreamError):
        return exc.status is not None and exc.status >= 500
    return isinstance(exc, RateLimited | ConnectionFailed | IncompleteStream)


def _headers(token: str, *, stream: bool) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "text/event-stream" if stream else "application/json",
    }


def _chat_body(request: ChatRequest, *, stream: bool, include_usage: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": request.model, "messages": request.messages}
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if stream:
        body["stream"] = True
        if include_usage:
            body["stream_options"] = {"include_usage": True}
    return body


def _is_json(response: httpx.Response) -> bool:
    content_type = str(response.headers.get("Content-Type", ""))
    return content_type.split(";")[0].strip().lower() == "application/json"


def _json_body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise MalformedResponse("Nobox sent a body that is not JSON") from None


def _json_object(data: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        raise MalformedResponse("Nobox sent a stream event that is not JSON") from None
    if not isinstance(value, dict):
        raise MalformedResponse("Nobox sent a stream event that is not a JSON object")
    return value


def _completion_from(payload: Any, token: str) -> Completion:
    if isinstance(payload, dict) and payload.get("error") is not None:
        raise error_from_payload(payload, secret=token)
    choice = _first_choice(payload) if isinstance(payload, dict) else None
    message = choice.get("message") if choice is not None else None
    if not isinstance(payload, dict) or choice is None or not isinstance(message, dict):
        raise MalformedResponse("the Nobox reply has no message")
    content = message.get("content")
    return Completion(
        # content is null on some refusals and content-filter stops: that is an empty reply.
        text=content if isinstance(content, str) else "",
        finish_reason=_str_or_none(choice.get("finish_reason")),
        usage=_usage_from(payload.get("usage")),
        model=_str_or_none(payload.get("model")),
        completion_id=_str_or_none(payload.get("id")),
    )


def _completed(completion: Completion) -> Completed:
    return Completed(
        finish_reason=completion.finish_reason,
        usage=completion.usage,
        model=completion.model,
        completion_id=completion.completion_id,
    )


def _models_from(payload: Any, token: str) -> list[ModelInfo]:
    if isinstance(payload, dict) and payload.get("error") is not None:
        raise error_from_payload(payload, secret=token)
    items = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        raise MalformedResponse('the Nobox model list has no "data" array')
    return [_model_from(item) for item in items]


def _model_from(item: Any) -> ModelInfo:
    model_id = item.get("id") if isinstance(item, dict) else None
    if not isinstance(item, dict) or not isinstance(model_id, str) or not model_id:
        raise MalformedResponse("the Nobox model list has an entry without an id")
    return ModelInfo(
        id=model_id,
        public_id=_str_or_none(item.get("public_id")),
        name=_str_or_none(item.get("name")) or model_id,
        pricing=item.get("pricing"),
        price=Price.parse(item.get("pricing")),
        provider=_str_or_none(item.get("provider")) or _id_prefix(model_id),
        context_length=_positive_int(item.get("context_length")),
    )


def _id_prefix(model_id: str) -> str | None:
    """ "openai/gpt-4o" -> "openai"; a bare id ("gpt-4o") names no provider."""
    prefix, slash, _ = model_id.partition("/")
    return prefix if slash and prefix else None


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    return number if number > 0 else None


def _first_choice(payload: dict[str, Any]) -> dict[str, Any] | None:
    choices = payload.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0]
    return None


def _usage_from(value: Any) -> Usage | None:
    """Usage if upstream sent a usable one. A garbled usage must not cost the user the reply."""
    if not isinstance(value, dict):
        return None
    prompt, completion = value.get("prompt_tokens"), value.get("completion_tokens")
    if not (_is_count(prompt) and _is_count(completion)):
        return None
    total = value.get("total_tokens")
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=total if _is_count(total) else prompt + completion,
    )


def _is_count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _describe_failure(exc: Exception, token: str) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text.replace(token, "[redacted]") if token else text
