"""The benchmark's clients: a bare SSE reader (the baseline), a browser-like sender socket and a
watcher socket on another process. Each rebuilds the reply's text the way the page does and
notes, for every chunk, when its text first arrived.

Lag needs no shared state with the servers: every `sim/bench` chunk carries the wall-clock time
the simulator sent it (`[k=12 t=1700000000.123456]`); a client finds the stamps in the text it
rebuilt, whatever merging or splitting happened on the way, and takes arrival minus stamp.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from chat.nobox.simulator import BENCH_STAMP

MODEL = "sim/bench"
TOKEN = "sk-bench-token-0001"
HANDSHAKE_TIMEOUT = 30.0  # connect + hello, and each warm-up step
WARM_UP_TIMEOUT = 60.0
FOREVER = float("inf")  # no idle limit: only the deadline
WARM_UP_POLL = 3.0  # seconds without `done` before asking for the conversation's state


def bench_prompt(chunks: int, rate: float, label: str = "bench") -> str:
    return f"{label} chunks={chunks} rate={rate:g}"


@dataclass
class Stream:
    """One reply as one client rebuilt it."""

    started: float = 0.0  # wall clock of the request (direct) or of the `send` frame
    text: str = ""
    scanned: int = 0  # stamps before this offset are already noted
    arrivals: dict[int, tuple[float, float]] = field(default_factory=dict)  # k: (sent, arrived)
    first_text: float | None = None
    gaps: int = 0  # deltas starting past the end of the text: something was lost on the way
    overlaps: int = 0  # deltas starting before the end: text sent twice
    deltas: int = 0  # delta frames (SSE chunks, directly)
    done: str | None = None  # the final content announced (`done`, or the end of the SSE stream)
    status: str | None = None
    failure: str | None = None  # why this client gave up, if it did

    def snapshot(self, text: str, now: float) -> None:
        self.text, self.scanned = text, 0
        self._noted(now)

    def delta(self, offset: int, text: str, now: float) -> None:
        self.deltas += 1
        if offset > len(self.text):
            self.gaps += 1
        elif offset < len(self.text):
            self.overlaps += 1
        self.text = self.text[:offset] + text
        self.scanned = min(self.scanned, offset)
        self._noted(now)

    def _noted(self, now: float) -> None:
        if self.text and self.first_text is None:
            self.first_text = now
        for match in BENCH_STAMP.finditer(self.text, self.scanned):
            self.arrivals.setdefault(int(match.group(1)), (float(match.group(2)), now))
            self.scanned = match.end()

    def lags(self) -> list[float]:
        return [arrived - sent for sent, arrived in self.arrivals.values()]

    @property
    def ttft(self) -> float | None:
        return None if self.first_text is None else self.first_text - self.started

    @property
    def whole(self) -> bool:
        """Ended, and the text rebuilt live is exactly the final text."""
        return self.failure is None and self.done is not None and self.done == self.text


# --- the baseline -----------------------------------------------------------------------------


def direct_client(streams: int) -> httpx.AsyncClient:
    # httpx pools 100 connections by default: more streams would queue, not run side by side
    limits = httpx.Limits(max_connections=streams + 10, max_keepalive_connections=streams + 10)
    return httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(30.0))


async def direct_stream(
    client: httpx.AsyncClient, sim_url: str, prompt: str, go: asyncio.Event, deadline: float
) -> Stream:
    body = {
        "model": MODEL,
        "stream": True,
        "messages": [{"role": "user", "content": prompt}],
        "stream_options": {"include_usage": True},
    }
    await go.wait()
    stream = Stream(started=time.time())
    try:
        async with asyncio.timeout(max(deadline - time.time(), 0.1)):
            await _read_sse(client, sim_url, body, stream)
    except (TimeoutError, httpx.HTTPError) as error:
        stream.failure = f"{type(error).__name__}"
    return stream


async def _read_sse(
    client: httpx.AsyncClient, sim_url: str, body: dict[str, Any], stream: Stream
) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    url = f"{sim_url}/v1/chat/completions"
    async with client.stream("POST", url, json=body, headers=headers) as response:
        async for line in response.aiter_lines():
            if line == "data: [DONE]":
                stream.done, stream.status = stream.text, "complete"
                return
            if not line.startswith("data: "):
                continue
            choices = json.loads(line[6:]).get("choices") or [{}]
            text = choices[0].get("delta", {}).get("content")
            if text:
                stream.delta(len(stream.text), text, time.time())


# --- noboxweb sockets -------------------------------------------------------------------------


class Gone(Exception):
    """The socket stopped being useful: timed out, closed, or refused a frame."""


async def open_socket(url: str, session: str) -> ClientConnection:
    ws_url = url.replace("http://", "ws://") + "/ws/chat/"
    headers = {"Cookie": f"sessionid={session}", "Origin": url}
    async with asyncio.timeout(HANDSHAKE_TIMEOUT):
        ws = await connect(ws_url, additional_headers=headers, max_size=None, open_timeout=None)
        hello = json.loads(await ws.recv())
    if hello.get("type") != "hello":
        await ws.close()
        raise Gone(f"expected hello, got {hello.get('type')}")
    return ws


async def next_frame(ws: ClientConnection, deadline: float, idle: float) -> dict[str, Any]:
    """The next frame, or Gone once the deadline or `idle` seconds of silence have passed."""
    wait = min(deadline - time.time(), idle)
    if wait <= 0:
        raise Gone("deadline")
    try:
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), wait))
    except TimeoutError:
        raise Gone("timeout") from None
    except Exception as error:  # closed by the server, mostly
        raise Gone(type(error).__name__) from error
    return frame


def send_frame(text: str, conversation: str | None) -> str:
    return json.dumps(
        {
            "type": "send",
            "client_id": uuid.uuid4().hex,
            "conversation": conversation,
            "text": text,
            "model": MODEL,
        }
    )


def apply(frame: dict[str, Any], stream: Stream, now: float) -> None:
    """Fold one frame about a reply into what the client holds of it."""
    kind = frame["type"]
    if kind == "snapshot":
        stream.snapshot(frame["text"], now)
    elif kind == "delta":
        stream.delta(frame["offset"], frame["text"], now)
    elif kind == "done":
        stream.done = frame["message"]["content"]
        stream.status = frame["message"]["status"]


@dataclass
class Sender:
    """A browser tab on process 1: starts a conversation, then sends the measured message."""

    url: str
    session: str
    ws: ClientConnection | None = None
    conversation: str | None = None
    reply: str | None = None  # the measured reply's id, once acknowledged
    stream: Stream = field(default_factory=Stream)
    ack: float | None = None  # seconds from `send` to `ack`
    warm_up_missed_done: bool = False

    async def open(self) -> None:
        try:
            self.ws = await open_socket(self.url, self.session)
        except Exception as error:
            self.stream.failure = f"connect: {type(error).__name__} {error}"[:120]

    async def warm_up(self, chunks: int) -> None:
        """A first, one-chunk reply: gives the socket a conversation that watchers can join
        before the measured reply starts, and warms the process up."""
        if self.ws is None:
            return
        try:
            await self._warm_up(chunks)
        except Gone as error:
            self.stream.failure = f"warm-up: {error}"

    async def _warm_up(self, chunks: int) -> None:
        assert self.ws is not None
        deadline = time.time() + WARM_UP_TIMEOUT
        await self.ws.send(send_frame(bench_prompt(chunks, 0, "warm-up"), None))
        reply = None
        while True:
            # the ack may queue behind every other send; after it, poll now and then
            idle = WARM_UP_TIMEOUT if reply is None else WARM_UP_POLL
            try:
                frame = await next_frame(self.ws, deadline, idle)
            except Gone:
                if reply is None or time.time() > deadline:
                    raise
                # `done` may be lost on the way: ask for the state instead of waiting forever
                await self.ws.send(json.dumps({"type": "subscribe", "conversation": self.conv}))
                continue
            if frame["type"] == "error":
                raise Gone(f"error {frame.get('code')}")
            if frame["type"] == "ack":
                self.conversation, reply = frame["conversation"], frame["messages"][-1]["id"]
            elif _warm_up_over(frame, reply):
                self.warm_up_missed_done = frame["type"] == "history"
                return

    @property
    def conv(self) -> str:
        assert self.conversation is not None
        return self.conversation

    async def measure(self, prompt: str, go: asyncio.Event, deadline: float, idle: float) -> None:
        await go.wait()
        if self.ws is None or self.stream.failure:
            return
        self.stream.started = time.time()
        try:
            await self.ws.send(send_frame(prompt, self.conversation))
            await self._read(deadline, idle)
        except Gone as error:
            self.stream.failure = str(error)
        except Exception as error:
            self.stream.failure = type(error).__name__

    async def _read(self, deadline: float, idle: float) -> None:
        assert self.ws is not None
        while True:
            # a slow `ack` is latency, not loss: silence counts only once the reply has started
            frame = await next_frame(self.ws, deadline, idle if self.reply else FOREVER)
            now, kind = time.time(), frame["type"]
            if kind == "error":
                raise Gone(f"error {frame.get('code')}")
            if kind == "ack":
                self.ack, self.reply = now - self.stream.started, frame["messages"][-1]["id"]
            elif kind in ("snapshot", "delta", "done") and frame["reply"] == self.reply:
                apply(frame, self.stream, now)
                if kind == "done":
                    return

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


def _warm_up_over(frame: dict[str, Any], reply: str | None) -> bool:
    """`done` for the reply, or a `history` in which it is no longer streaming."""
    if frame["type"] == "done":
        return bool(frame["reply"] == reply)
    return frame["type"] == "history" and any(
        m["id"] == reply and m["status"] != "streaming" for m in frame["messages"]
    )


@dataclass
class Watcher:
    """Another tab of the same person on process 2, watching the sender's conversation: every
    frame it gets crossed from process 1."""

    url: str
    session: str
    sender: Sender
    ws: ClientConnection | None = None
    known: set[str] = field(default_factory=set)  # replies that were there before
    streams: dict[str, Stream] = field(default_factory=dict)
    failure: str | None = None

    async def open(self) -> None:
        if self.sender.conversation is None:
            self.failure = "no conversation to watch"
            return
        try:
            self.ws = await open_socket(self.url, self.session)
            subscribe = {"type": "subscribe", "conversation": self.sender.conversation}
            await self.ws.send(json.dumps(subscribe))
            deadline = time.time() + HANDSHAKE_TIMEOUT
            while (frame := await next_frame(self.ws, deadline, HANDSHAKE_TIMEOUT))[
                "type"
            ] != "history":
                pass
            self.known = {m["id"] for m in frame["messages"]}
        except Exception as error:
            self.failure = f"watch: {type(error).__name__} {error}"[:120]

    async def watch(self, deadline: float, idle: float) -> None:
        if self.ws is None:
            return
        try:
            await self._read(deadline, idle)
        except Gone as error:
            self.failure = str(error)

    async def _read(self, deadline: float, idle: float) -> None:
        assert self.ws is not None
        while True:
            frame = await next_frame(self.ws, deadline, idle if self.streams else FOREVER)
            reply = frame.get("reply")
            if frame["type"] not in ("snapshot", "delta", "done") or not isinstance(reply, str):
                continue
            if reply in self.known:
                continue
            apply(frame, self.streams.setdefault(reply, Stream()), time.time())
            if frame["type"] == "done":
                return

    @property
    def stream(self) -> Stream:
        """What this watcher rebuilt of the sender's measured reply."""
        if self.sender.reply is None:
            return Stream(failure=self.failure or "the send was never acknowledged")
        found = self.streams.setdefault(self.sender.reply, Stream())
        if found.done is None:
            found.failure = found.failure or self.failure or "no done"
        return found

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
