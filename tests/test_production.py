"""Production-shaped end to end: two daphne processes sharing PostgreSQL and Redis (tests/stack.py).

Process 1 generates most replies; process 2 serves the other socket, so every delta, snapshot,
stop and `done` a process-2 socket sees crossed Redis.

Runs where PostgreSQL (127.0.0.1:5432, user postgres, trust auth) and Redis (127.0.0.1:6379) are
reachable; skipped elsewhere, a failure on CI.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from chat.nobox.simulator import find_model, reply_text
from tests.servers import app_server, create_user, login
from tests.stack import (
    CHECKPOINT_INTERVAL,
    FRAME_TIMEOUT,
    FULL_REPLY,
    PROMPT,
    REPLY_TIMEOUT,
    REPLY_TOKENS,
    SWEEP_TIMEOUT,
    ChatClient,
    OpenPair,
    Stack,
    assert_no_problems,
    assert_shown,
    client_pairs,
    count,
    reply_row,
    row_until,
    running_stack,
    third_process,
    upstream_calls,
)

pytestmark = pytest.mark.production


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("production")) as running:
        yield running


@pytest.fixture
async def clients(stack: Stack) -> AsyncIterator[OpenPair]:
    async with client_pairs(stack) as open_pair:
        yield open_pair


# --- scenarios ---------------------------------------------------------------------------------


async def test_joining_mid_reply_on_another_process_shows_the_same_text(
    stack: Stack, clients: OpenPair
) -> None:
    a, b = await clients()
    conversation, reply = await a.send_message(PROMPT, "sim/long")
    await a.wait_until(lambda: a.page.deltas.get(reply, 0) >= 3, "three deltas", FRAME_TIMEOUT)
    assert not any(f["type"] == "done" for f in a.frames if f.get("reply") == reply)

    history = await b.subscribe(conversation)
    [joined] = [m for m in history["messages"] if m["id"] == reply]
    assert joined["status"] == "streaming", "B must join while the reply is being written"
    done_b = await b.done(reply)
    done_a = await a.done(reply)

    # B caught up from a snapshot of the text so far (process 1 answered its sync through
    # Redis), then followed live deltas with no gap and no overlap.
    assert b.page.snapshots.get(reply), f"B got no snapshot: {b._summary()}"
    assert b.page.deltas.get(reply, 0) > 0, "B saw no live delta after joining"
    assert done_a == done_b
    assert done_a["status"] == "complete"
    row = await reply_row(stack, reply)
    assert row.status == "complete"
    assert done_a["content"] == row.content == FULL_REPLY
    assert_shown(reply, row.content, a, b)
    assert_no_problems(a, b)


async def test_reply_completes_and_is_stored_after_its_socket_leaves(
    stack: Stack, clients: OpenPair
) -> None:
    a, observer = await clients()
    conversation, reply = await a.send_message(PROMPT, "sim/long")
    await a.close()  # right after ack: the reply belongs to process 1, not to the socket

    history = await observer.subscribe(conversation)
    [joined] = [m for m in history["messages"] if m["id"] == reply]
    assert joined["status"] == "streaming", "the reply must still be running after A left"
    row = await row_until(
        stack, reply, lambda r: r.status != "streaming", "finished", REPLY_TIMEOUT
    )
    assert row.status == "complete", row
    assert row.content == FULL_REPLY

    done = await observer.done(reply)
    assert done["status"] == "complete"
    assert done["content"] == row.content
    assert_shown(reply, row.content, observer)
    assert_no_problems(observer)


async def test_stop_from_another_process_stops_the_reply(stack: Stack, clients: OpenPair) -> None:
    a, b = await clients()
    conversation = await a.new_conversation()
    await b.subscribe(conversation)
    _, reply = await a.send_message(PROMPT, "sim/long", conversation=conversation)
    # B learns of the new turn through Redis and follows it from its first delta.
    await b.expect("messages", conversation=conversation)
    await b.wait_until(lambda: b.page.deltas.get(reply, 0) >= 3, "three deltas", FRAME_TIMEOUT)

    await b.send({"type": "stop", "conversation": conversation})
    done_b = await b.done(reply, timeout=FRAME_TIMEOUT)
    done_a = await a.done(reply, timeout=FRAME_TIMEOUT)

    assert done_a == done_b
    assert done_a["status"] == "stopped", done_a
    row = await reply_row(stack, reply)
    assert row.status == "stopped"
    assert row.content, "a stopped reply keeps its text"
    assert len(row.content) < len(FULL_REPLY) and FULL_REPLY.startswith(row.content)
    assert done_a["content"] == row.content
    assert_shown(reply, row.content, a, b)
    assert_no_problems(a, b)


HUNDRED_MODEL = "openai/gpt-4o"


async def test_a_hundred_replies_at_once_arrive_whole_on_both_processes(stack: Stack) -> None:
    """100 replies at once, half generated on each process, each followed by its sender and by
    a watcher on the other process: every socket gets every piece and `done`."""
    opened: list[ChatClient] = []

    async def open_on(process: int, name: str) -> ChatClient:
        url, cookies = (
            (stack.url1, stack.cookies1) if process == 1 else (stack.url2, stack.cookies2)
        )
        client = await ChatClient.open(name, url, cookies)
        opened.append(client)
        return client

    try:
        senders = await asyncio.gather(*(open_on(1 + i % 2, f"sender {i}") for i in range(100)))
        watchers = await asyncio.gather(*(open_on(2 - i % 2, f"watcher {i}") for i in range(100)))
        conversations = await asyncio.gather(*(s.new_conversation() for s in senders))
        await asyncio.gather(
            *(w.subscribe(c) for w, c in zip(watchers, conversations, strict=True))
        )

        prompts = [f"reply number {i} of a hundred" for i in range(100)]
        sent = await asyncio.gather(
            *(
                s.send_message(p, HUNDRED_MODEL, conversation=c)
                for s, p, c in zip(senders, prompts, conversations, strict=True)
            )
        )
        replies = [reply for _, reply in sent]
        await asyncio.gather(
            *(s.done(r, timeout=60) for s, r in zip(senders, replies, strict=True))
        )
        await asyncio.gather(
            *(w.done(r, timeout=60) for w, r in zip(watchers, replies, strict=True))
        )

        for i, reply in enumerate(replies):
            expected = reply_text(
                find_model(HUNDRED_MODEL), [{"role": "user", "content": prompts[i]}], REPLY_TOKENS
            )
            row = await reply_row(stack, reply)
            assert (row.status, row.content) == ("complete", expected), f"reply {i}: {row}"
            assert_shown(reply, expected, senders[i], watchers[i])
            assert watchers[i].page.deltas.get(reply, 0) > 0, f"watcher {i} saw no live delta"
        assert_no_problems(*senders, *watchers)
    finally:
        await asyncio.gather(*(client.close() for client in opened), return_exceptions=True)


async def test_the_same_send_on_both_processes_stores_one_turn_and_calls_nobox_once(
    stack: Stack, clients: OpenPair
) -> None:
    """The browser resends its pending frame after every reconnect, so the same `send` can reach
    two processes at once: one turn, one upstream call, and both sockets answered `ack`."""
    a, b = await clients()
    existing = await a.new_conversation()
    await b.subscribe(existing)
    for conversation in [None, existing] * 5:
        client_id = uuid.uuid4().hex
        frame = {
            "type": "send",
            "client_id": client_id,
            "conversation": conversation,
            "text": f"twice {client_id}",
            "model": HUNDRED_MODEL,
        }
        calls_before = await upstream_calls(stack)
        await asyncio.gather(a.send(frame), b.send(frame))
        ack_a = await a.expect("ack", client_id=client_id)
        ack_b = await b.expect("ack", client_id=client_id)

        assert ack_a["conversation"] == ack_b["conversation"]
        assert sorted([ack_a["duplicate"], ack_b["duplicate"]]) == [False, True]
        assert ack_a["messages"][1]["id"] == ack_b["messages"][1]["id"]
        reply = ack_a["messages"][1]["id"]
        assert (await a.done(reply))["status"] == "complete"
        assert (await b.done(reply))["status"] == "complete"
        stored = await count(
            stack, "SELECT count(*) FROM chat_message WHERE client_id = %s", client_id
        )
        assert stored == 1, f"the same send was stored {stored} times"
        assert await upstream_calls(stack) == calls_before + 1
    assert_no_problems(a, b)


async def test_killed_process_leaves_an_interrupted_reply_with_its_checkpoint(
    stack: Stack, tmp_path: Path
) -> None:
    """The process killed is a third one of its own: the stack's two serve the other tests."""
    with third_process(stack, tmp_path / "daphne-killed.log") as (url, cookies, proc):
        async with client_pairs(stack, a_on=(url, cookies)) as open_pair:
            a, watcher = await open_pair()
            await _kill_mid_reply(stack, a, watcher, proc)


async def _kill_mid_reply(
    stack: Stack, a: ChatClient, watcher: ChatClient, proc: subprocess.Popen[bytes]
) -> None:
    conversation = await a.new_conversation()
    await watcher.subscribe(conversation)
    _, reply = await a.send_message(PROMPT, "sim/long", conversation=conversation)
    await watcher.expect("messages", conversation=conversation)

    # Wait for a checkpoint to change the row, then kill half an interval later: the text that
    # checkpoint held has long been published, and no checkpoint write is in flight.
    first = await row_until(stack, reply, lambda r: bool(r.content), "checkpointed", REPLY_TIMEOUT)
    await row_until(
        stack, reply, lambda r: r.content != first.content, "checkpointed again", REPLY_TIMEOUT
    )
    await asyncio.sleep(CHECKPOINT_INTERVAL / 2)
    before_kill = await reply_row(stack, reply)
    assert before_kill.status == "streaming", "the reply must still be running when killed"
    proc.send_signal(signal.SIGKILL)
    await asyncio.to_thread(proc.wait, 10)

    # Process 2's sweep finds the stale heartbeat and tells the watcher.
    done = await watcher.done(reply, timeout=SWEEP_TIMEOUT)
    assert done["status"] == "interrupted", done
    assert done["error"] and done["error"]["code"] == "interrupted"
    row = await reply_row(stack, reply)
    assert row.status == "interrupted"
    assert row.content == done["content"]
    assert row.content, "an interrupted reply keeps its checkpointed text"
    assert row.content.startswith(before_kill.content), "the last checkpoint was lost"
    assert len(row.content) < len(FULL_REPLY) and FULL_REPLY.startswith(row.content)
    assert watcher.page.streamed[reply].startswith(row.content), (
        "the stored text is not a prefix of what the watcher was shown"
    )
    assert FULL_REPLY.startswith(watcher.page.streamed[reply])
    assert_no_problems(watcher)


async def test_the_socket_limit_counts_a_users_sockets_in_every_process(
    stack: Stack, tmp_path: Path
) -> None:
    """Two more processes with a limit of two sockets per user: the third socket is refused on
    whichever process it opens, and a closed socket frees its place everywhere."""
    env = {**stack.env, "WS_MAX_SOCKETS_PER_USER": "2"}
    # A user of its own: sockets other tests leave to lapse (a killed process's) count for alice.
    create_user(env, "dana", stack.password)
    with (
        app_server(env, log_path=tmp_path / "limited-1.log") as (url1, _),
        app_server(env, log_path=tmp_path / "limited-2.log") as (url2, _),
    ):
        cookies1, cookies2 = (
            login(url1, "dana", stack.password),
            login(url2, "dana", stack.password),
        )
        first = await ChatClient.open("first", url1, cookies1)
        second = await ChatClient.open("second", url2, cookies2)
        assert await ChatClient.refused(url1, cookies1) == 4429
        assert await ChatClient.refused(url2, cookies2) == 4429
        await first.close()
        third = await ChatClient.open("third, after one closed", url2, cookies2)
        await asyncio.gather(second.close(), third.close())


async def test_versions_travel_between_processes_and_a_twin_regenerate_calls_nobox_once(
    stack: Stack, clients: OpenPair
) -> None:
    """Branches on two processes: a regenerate sent to both at once makes one reply and one
    upstream call; the other process's tab follows it live, then follows a switch back."""
    a, b = await clients()
    conversation = await a.new_conversation()
    await b.subscribe(conversation)
    first_reply = next(f for f in a.frames if f["type"] == "ack")["messages"][1]
    client_id = uuid.uuid4().hex
    frame = {
        "type": "regenerate",
        "client_id": client_id,
        "conversation": conversation,
        "reply": first_reply["id"],
    }
    calls_before = await upstream_calls(stack)
    await asyncio.gather(a.send(frame), b.send(frame))
    ack_a = await a.expect("ack", client_id=client_id)
    ack_b = await b.expect("ack", client_id=client_id)

    assert sorted([ack_a["duplicate"], ack_b["duplicate"]]) == [False, True]
    [new_a], [new_b] = ack_a["messages"], ack_b["messages"]
    assert new_a["id"] == new_b["id"] and new_a["versions"] == [first_reply["id"], new_a["id"]]
    assert ack_a["base"] == ack_b["base"] == first_reply["seq"] - 1
    done_a, done_b = await a.done(new_a["id"]), await b.done(new_a["id"])
    assert done_a == done_b and done_a["status"] == "complete"
    assert await upstream_calls(stack) == calls_before + 1
    stored = await count(stack, "SELECT count(*) FROM chat_message WHERE client_id = %s", client_id)
    assert stored == 1

    # A switch on process 2 reaches process 1's tab through Redis: history from the fork.
    start = len(a.frames)
    await b.send({"type": "switch", "conversation": conversation, "message": first_reply["id"]})
    history = await a.expect("history", conversation=conversation, start=start)
    assert history["base"] == first_reply["seq"] - 1
    assert [m["id"] for m in history["messages"]] == [first_reply["id"]]
    assert_no_problems(a, b)
