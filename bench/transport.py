"""Micro-benchmark: CPU per upstream SSE chunk, httpx's default transport vs FastTransport.

Starts the simulator, then for each transport reads `--streams` concurrent `sim/bench` streams
of `--chunks` chunks at `--rate` chunks a second each, and divides this process's CPU time by
the SSE events received. At a modest rate every chunk arrives in a network read of its own, as
in production; `--rate 0` sends as fast as possible, so reads merge chunks and the per-chunk
cost drops. Two readers: `raw` (response.aiter_bytes, the transport alone) and `client`
(NoboxClient.stream_chat, transport + SSE + JSON).

    .venv/bin/python bench/transport.py [--streams 100] [--chunks 200] [--rate 50]
        [--readers raw,client] [--transports httpx,fast]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import aclosing
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.clients import MODEL, TOKEN, bench_prompt  # noqa: E402
from bench.stack import simulator  # noqa: E402
from chat.nobox import ChatRequest, Completed, NoboxClient  # noqa: E402
from chat.nobox.transport import FastTransport  # noqa: E402

Transport = Callable[[int], httpx.AsyncBaseTransport | None]
TRANSPORTS: dict[str, Transport] = {
    "httpx": lambda streams: httpx.AsyncHTTPTransport(
        limits=httpx.Limits(max_connections=streams + 10, max_keepalive_connections=streams + 10)
    ),
    "fast": lambda streams: FastTransport(max_connections=streams + 10, max_idle=streams + 10),
}


def _body(chunks: int, rate: float) -> dict[str, object]:
    return {
        "model": MODEL,
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": bench_prompt(chunks, rate)}],
    }


async def raw_stream(http: httpx.AsyncClient, url: str, chunks: int, rate: float) -> int:
    """SSE events read through response.aiter_bytes (a chunk is one event, `\\n\\n`-ended)."""
    events, tail = 0, b""
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "text/event-stream"}
    async with http.stream(
        "POST", f"{url}/v1/chat/completions", json=_body(chunks, rate), headers=headers
    ) as response:
        async for data in response.aiter_bytes():
            events += (tail + data).count(b"\n\n")  # an event's end may straddle two reads
            tail = data[-1:]
    return events


async def client_stream(http: httpx.AsyncClient, url: str, chunks: int, rate: float) -> int:
    """Items from NoboxClient.stream_chat; counted as events: deltas, role, usage, [DONE]."""
    client = NoboxClient(url, http)
    request = ChatRequest(MODEL, [{"role": "user", "content": bench_prompt(chunks, rate)}])
    items = 0
    async with aclosing(client.stream_chat(TOKEN, request)) as stream:
        async for item in stream:
            items += 1
            if isinstance(item, Completed):
                items += 2  # the role chunk and the usage chunk carry no delta
    return items


async def measure(
    reader: str, transport: str, url: str, streams: int, chunks: int, rate: float
) -> tuple[float, int, float]:
    """(µs of CPU per event, events, wall seconds) for one batch of concurrent streams."""
    read = raw_stream if reader == "raw" else client_stream
    timeout = httpx.Timeout(None, connect=30.0, pool=30.0)
    async with httpx.AsyncClient(transport=TRANSPORTS[transport](streams), timeout=timeout) as http:
        await read(http, url, 5, 0)  # warm up: imports, the first connection
        cpu, wall = time.process_time(), time.perf_counter()
        counts = await asyncio.gather(*(read(http, url, chunks, rate) for _ in range(streams)))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    events = sum(counts)
    return cpu / events * 1e6, events, wall


async def run(args: argparse.Namespace, url: str) -> None:
    print(
        f"{args.streams} streams x {args.chunks} chunks at {args.rate:g}/s, "
        f"{args.repeat} runs each, best run shown"
    )
    print(f"{'reader':<8} {'transport':<10} {'µs/chunk':>9} {'events':>8} {'wall s':>7}")
    for reader in args.readers.split(","):
        for transport in args.transports.split(","):
            runs = [
                await measure(reader, transport, url, args.streams, args.chunks, args.rate)
                for _ in range(args.repeat)
            ]
            per_chunk, events, wall = min(runs)
            print(f"{reader:<8} {transport:<10} {per_chunk:9.1f} {events:8d} {wall:7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--readers", default="raw,client")
    parser.add_argument("--transports", default=",".join(TRANSPORTS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, simulator(Path(tmp) / "sim.log") as (url, _):
        asyncio.run(run(args, url))


if __name__ == "__main__":
    main()
