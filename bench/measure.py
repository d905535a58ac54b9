"""One measurement: N streams at once, straight from the simulator or through a deployment, with
the servers' counters read just before the sends go out and just after the last reply ends."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.clients import (
    HANDSHAKE_TIMEOUT,
    TOKEN,
    Sender,
    Stream,
    Watcher,
    bench_prompt,
    direct_client,
    direct_stream,
)
from bench.stack import Deployment, cpu_seconds, pg_sessions, redis_calls

__all__ = ["TOKEN", "Level", "Shape", "measure_direct", "measure_relay"]

# PostgreSQL publishes a backend's counters at most once a second or so: wait before reading.
PG_STATS_DELAY = 1.5
CLOSE_TIMEOUT = 15.0


@dataclass(frozen=True)
class Shape:
    """What every stream of a run looks like, and how long a client waits for one."""

    chunks: int
    rate: float  # chunks a second
    grace: float  # seconds a reply may take past its own length before the client gives up
    idle: float  # seconds of silence on a socket before the client gives up

    @property
    def duration(self) -> float:
        return (self.chunks - 1) / self.rate if self.rate > 0 else 0.0

    def deadline(self) -> float:
        return time.time() + self.duration + self.grace

    @property
    def prompt(self) -> str:
        return bench_prompt(self.chunks, self.rate)


@dataclass
class Level:
    """Everything measured for one deployment at one number of concurrent streams."""

    config: str
    streams: int
    chunks: int
    direct: list[Stream]
    senders: list[Stream] = field(default_factory=list)
    watchers: list[Stream] = field(default_factory=list)
    acks: list[float] = field(default_factory=list)
    deltas: int = 0  # deltas published, as far as the sockets saw them (see _collect)
    app_cpu: float = 0.0  # seconds, all app processes together
    direct_cpu: float = 0.0  # seconds this process spent reading the streams directly
    sim_cpu: float = 0.0
    pg_sessions: int | None = None
    redis_calls: int | None = None
    warm_up_missed_done: int = 0
    failures: Counter[str] = field(default_factory=Counter)


@dataclass
class Direct:
    """The baseline: the streams as bare clients read them, and the CPU seconds the reading cost
    this process (httpx and JSON in Python: a floor for any Python relay on this machine)."""

    streams: list[Stream]
    cpu: float


async def measure_direct(sim_url: str, streams: int, shape: Shape) -> Direct:
    go = asyncio.Event()
    async with direct_client(streams) as client:
        # one-chunk requests first, side by side, so the pool holds a connection per stream:
        # noboxweb's own upstream connections are warm too (its warm-up reply)
        opened = asyncio.Event()
        opened.set()
        warm_up = bench_prompt(1, 0, "warm-up")
        deadline = time.time() + HANDSHAKE_TIMEOUT
        await asyncio.gather(
            *(direct_stream(client, sim_url, warm_up, opened, deadline) for _ in range(streams))
        )
        deadline = shape.deadline() + 5
        tasks = [
            asyncio.create_task(direct_stream(client, sim_url, shape.prompt, go, deadline))
            for _ in range(streams)
        ]
        await asyncio.sleep(0)
        cpu0 = time.process_time()
        go.set()
        read = list(await asyncio.gather(*tasks))
        return Direct(read, time.process_time() - cpu0)


async def measure_relay(
    deployment: Deployment, sim_pid: int, streams: int, shape: Shape, direct: Direct
) -> Level:
    level = Level(deployment.name, streams, shape.chunks, direct.streams, direct_cpu=direct.cpu)
    sessions = deployment.sessions[:streams]
    senders = [Sender(deployment.sender_url, session) for session in sessions]
    await asyncio.gather(*(sender.open() for sender in senders))
    await asyncio.gather(*(sender.warm_up(1) for sender in senders))
    watchers: list[Watcher] = []
    if deployment.watcher_url is not None:
        watchers = [Watcher(deployment.watcher_url, sender.session, sender) for sender in senders]
        await asyncio.gather(*(watcher.open() for watcher in watchers))
    try:
        await _timed(level, deployment, sim_pid, senders, watchers, shape)
    finally:
        await _close([*senders, *watchers])
    _collect(level, senders, watchers)
    return level


async def _timed(
    level: Level,
    deployment: Deployment,
    sim_pid: int,
    senders: list[Sender],
    watchers: list[Watcher],
    shape: Shape,
) -> None:
    """Fire every `send` at once and read until each reply is done or given up on."""
    pids, database = deployment.app_pids, deployment.database
    production = database is not None
    cpu0, sim0 = cpu_seconds(pids), cpu_seconds([sim_pid])
    pg0 = pg_sessions(database) if database else 0
    redis0 = redis_calls() if production else 0
    go, deadline = asyncio.Event(), shape.deadline()
    tasks = [
        *(sender.measure(shape.prompt, go, deadline, shape.idle) for sender in senders),
        *(watcher.watch(deadline, shape.idle) for watcher in watchers),
    ]
    running = [asyncio.create_task(task) for task in tasks]
    await asyncio.sleep(0)  # every sender is waiting on `go`: they fire together
    go.set()
    await asyncio.gather(*running)
    level.app_cpu = cpu_seconds(pids) - cpu0
    level.sim_cpu = cpu_seconds([sim_pid]) - sim0
    if production:
        level.redis_calls = redis_calls() - redis0 - 1  # less our own INFO
    if database:
        await asyncio.sleep(PG_STATS_DELAY)
        level.pg_sessions = pg_sessions(database) - pg0


async def _close(sockets: Sequence[Sender | Watcher]) -> None:
    closing = asyncio.gather(*(s.close() for s in sockets), return_exceptions=True)
    # bounded: the servers are torn down at the end of the run anyway
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(closing, CLOSE_TIMEOUT)


def _collect(level: Level, senders: list[Sender], watchers: list[Watcher]) -> None:
    level.senders = [sender.stream for sender in senders]
    level.watchers = [watcher.stream for watcher in watchers]
    level.acks = [sender.ack for sender in senders if sender.ack is not None]
    # a reply's deltas, by the socket that got the most of them: a lower bound where frames
    # were lost on the way
    by_reply = [[s.deltas] for s in level.senders]
    for counts, watcher in zip(by_reply, level.watchers, strict=False):
        counts.append(watcher.deltas)
    level.deltas = sum(max(counts) for counts in by_reply)
    level.warm_up_missed_done = sum(sender.warm_up_missed_done for sender in senders)
    for role, streams in (("sender", level.senders), ("watcher", level.watchers)):
        for stream in streams:
            if not stream.whole:
                reason = stream.failure or ("text differs from done" if stream.done else "?")
                level.failures[f"{role}: {reason[:50]}"] += 1
