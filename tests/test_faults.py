"""Faults survived on the production-shaped stack (tests/stack.py): Redis killed and restarted
mid-reply, PostgreSQL cut off across the end of a reply. What the user sees afterwards is the
point: the whole reply, stored, on every socket, which stayed open.

Redis here is a server of the test's own (the shared one is not ours to kill); PostgreSQL is
reached through a proxy the test can cut (tests/faults.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from tests.faults import CuttableProxy, RedisServer, cuttable_proxy, redis_server
from tests.stack import (
    FULL_REPLY,
    PROMPT,
    ChatClient,
    OpenPair,
    Stack,
    assert_no_problems,
    assert_shown,
    client_pairs,
    reply_row,
    running_stack,
)

pytestmark = pytest.mark.production


@dataclass
class FaultStack:
    stack: Stack
    redis: RedisServer
    database: CuttableProxy


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultStack]:
    with (
        redis_server() as redis,
        cuttable_proxy(5432) as proxy,
        running_stack(
            tmp_path_factory.mktemp("faults"),
            redis_url=redis.url,
            database_host=f"127.0.0.1:{proxy.port}",
        ) as stack,
    ):
        yield FaultStack(stack, redis, proxy)


@pytest.fixture
async def clients(faults: FaultStack) -> AsyncIterator[OpenPair]:
    async with client_pairs(faults.stack) as open_pair:
        yield open_pair


def shown_share(client: ChatClient, reply: str) -> float:
    return len(client.page.texts.get(reply, "")) / len(FULL_REPLY)


def log_lines(stack: Stack, needle: str) -> list[int]:
    """How many lines of each daphne log contain `needle`."""
    return [log.read_text(errors="replace").count(needle) for log in stack.logs]


def lines_with(stack: Stack, *needles: str) -> str:
    """The daphne logs' lines holding any of `needles`: what a failing assertion shows."""
    return "\n".join(
        line
        for log in stack.logs
        for line in log.read_text(errors="replace").splitlines()
        if any(needle in line for needle in needles)
    )


async def a_long_reply_watched_from_both(clients: OpenPair) -> tuple[ChatClient, ChatClient, str]:
    """A (process 1) starts a long reply in a conversation B (process 2) watches; the reply id."""
    a, b = await clients()
    conversation = await a.new_conversation()
    await b.subscribe(conversation)
    _, reply = await a.send_message(PROMPT, "sim/long", conversation=conversation)
    return a, b, reply


async def test_redis_restarted_mid_reply_loses_nothing_and_closes_no_socket(
    faults: FaultStack, clients: OpenPair
) -> None:
    a, b, reply = await a_long_reply_watched_from_both(clients)
    await b.wait_until(lambda: shown_share(b, reply) > 0.2, "a fifth of the reply", 15)
    unavailable_before = log_lines(faults.stack, "Redis unavailable")

    faults.redis.kill()
    await asyncio.sleep(1.5)  # replies go on; B, on the other process, hears nothing meanwhile
    faults.redis.start()

    done_b = await b.done(reply)
    done_a = await a.done(reply)
    assert done_a["status"] == done_b["status"] == "complete", done_b
    row = await reply_row(faults.stack, reply)
    assert (row.status, row.content) == ("complete", FULL_REPLY)
    # Every socket stayed open and followed the reply to the last character.
    assert not a.closed and not b.closed
    assert_shown(reply, FULL_REPLY, a, b)
    assert_no_problems(a, b)
    # A new socket on each process works at once (no HTTP 500 from a dead pool).
    for url, cookies in [
        (faults.stack.url1, faults.stack.cookies1),
        (faults.stack.url2, faults.stack.cookies2),
    ]:
        fresh = await ChatClient.open("fresh", url, cookies)
        await fresh.close()
    # One line when the outage starts, per process: not one per publish.
    after = log_lines(faults.stack, "Redis unavailable")
    new_lines = [n - m for n, m in zip(after, unavailable_before, strict=True)]
    assert new_lines == [1, 1], lines_with(faults.stack, "Redis")


async def test_postgresql_cut_off_across_the_end_of_a_reply_keeps_every_character(
    faults: FaultStack, clients: OpenPair
) -> None:
    a, b, reply = await a_long_reply_watched_from_both(clients)
    await a.wait_until(lambda: shown_share(a, reply) > 0.6, "most of the reply", 15)

    faults.database.cut()
    # The reply ends while the database is unreachable: its final write must wait, not fail.
    await a.wait_until(lambda: shown_share(a, reply) == 1.0, "the whole reply", 15)
    await asyncio.sleep(1.0)
    assert not any(f["type"] == "done" for f in a.frames if f.get("reply") == reply)
    faults.database.restore()

    done_a = await a.done(reply)
    done_b = await b.done(reply)
    warnings = lines_with(faults.stack, "WARNING", "ERROR")
    assert done_a["status"] == done_b["status"] == "complete", warnings
    assert done_a["content"] == FULL_REPLY
    row = await reply_row(faults.stack, reply)
    assert (row.status, row.content) == ("complete", FULL_REPLY)
    assert_shown(reply, FULL_REPLY, a, b)
    assert_no_problems(a, b)
    assert log_lines(faults.stack, "Task exception was never retrieved") == [0, 0]
