"""Budgets and rate limits at their boundaries, with the sends spread over two daphne processes
sharing PostgreSQL and Redis (tests/stack.py): exactly what the limit allows is accepted, and a
refused send stores nothing and calls Nobox never.

Each person below is fresh, so each test starts from nothing spent and nothing sent.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin

from tests.protocol import send_frame
from tests.servers import create_user, login, manage
from tests.stack import FRAME_TIMEOUT, REPLY_TIMEOUT, Stack, count, running_stack, upstream_calls

pytestmark = pytest.mark.production

PASSWORD = "limits-test-password-0042"
RESERVE = "0.25"  # USD a reply in flight holds
PER_MINUTE = 5
AT_ONCE = 3
SENDS = 10  # at once, half through each process
USAGE_OF = (
    "SELECT count(*) FROM chat_usage WHERE user_name = %s AND status = %s AND estimated "
    "AND message_id IS NOT NULL"
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(
        tmp_path_factory.mktemp("limits"),
        BUDGET_RESERVE_PER_REPLY=RESERVE,
        SEND_PER_MINUTE=str(PER_MINUTE),
        CONCURRENT_REPLIES=str(AT_ONCE),
    ) as running:
        yield running


def new_person(stack: Stack, monthly_limit: str | None = None) -> tuple[str, list[httpx.Cookies]]:
    """A person with a token of their own, signed in once through each process."""
    name = f"p{uuid.uuid4().hex[:8]}"
    create_user(stack.env, name, PASSWORD, token=f"sk-{name}-0001")
    if monthly_limit is not None:
        code = (
            "from chat.models import User; "
            f"User.objects.filter(username={name!r}).update(monthly_limit={monthly_limit!r})"
        )
        manage(stack.env, "shell", "-c", code)
    return name, [login(stack.url1, name, PASSWORD), login(stack.url2, name, PASSWORD)]


async def socket(base_url: str, cookies: httpx.Cookies) -> ClientConnection:
    cookie = "; ".join(f"{key}={value}" for key, value in cookies.items())
    ws = await connect(
        base_url.replace("http://", "ws://", 1) + "/ws/chat/",
        origin=Origin(base_url),
        additional_headers={"Cookie": cookie},
        proxy=None,
    )
    assert json.loads(await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT)) == {"type": "hello"}
    return ws


async def answer(ws: ClientConnection, frame: dict[str, Any]) -> dict[str, Any]:
    """The ack or error the server gave `frame`."""
    await ws.send(json.dumps(frame))
    while True:
        got: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT))
        if got["type"] in ("ack", "error") and got.get("client_id") == frame["client_id"]:
            return got


async def until_done(ws: ClientConnection, reply_id: str) -> dict[str, Any]:
    while True:
        got = json.loads(await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT))
        if got["type"] == "done" and got["reply"] == reply_id:
            message: dict[str, Any] = got["message"]
            return message


async def sends_at_once(
    stack: Stack, sessions: list[httpx.Cookies], model: str, sends: int = SENDS
) -> list[tuple[ClientConnection, dict[str, Any]]]:
    """`sends` new-chat sends at the same moment, on as many sockets, alternately on process 1
    and process 2; each socket with the answer to its send."""
    urls = [stack.url1, stack.url2]
    sockets = await asyncio.gather(*(socket(urls[n % 2], sessions[n % 2]) for n in range(sends)))
    answers = await asyncio.gather(
        *(answer(ws, send_frame(f"send {n}", model=model)) for n, ws in enumerate(sockets))
    )
    return list(zip(sockets, answers, strict=True))


async def finish(results: list[tuple[ClientConnection, dict[str, Any]]], stop: bool = True) -> None:
    """Wait for every accepted reply to end (stopping it first: sim/stall would hang on), then
    close every socket."""
    for ws, got in results:
        if got["type"] == "ack":
            if stop:
                await ws.send(json.dumps({"type": "stop", "conversation": got["conversation"]}))
            await until_done(ws, got["messages"][1]["id"])
        await ws.close()


async def stored_for(stack: Stack, name: str) -> tuple[int, int]:
    """(conversations, messages) the person has in the database."""
    conversations = await count(
        stack,
        "SELECT count(*) FROM chat_conversation c JOIN chat_user u ON u.id = c.owner_id "
        "WHERE u.username = %s",
        name,
    )
    messages = await count(
        stack,
        "SELECT count(*) FROM chat_message m JOIN chat_conversation c ON c.id = m.conversation_id "
        "JOIN chat_user u ON u.id = c.owner_id WHERE u.username = %s",
        name,
    )
    return conversations, messages


def codes(results: list[tuple[ClientConnection, dict[str, Any]]]) -> list[str]:
    return sorted(got["code"] if got["type"] == "error" else "accepted" for _, got in results)


async def test_concurrent_sends_at_the_budget_take_exactly_what_it_allows(stack: Stack) -> None:
    # Two replies in flight hold 2 x 0.25 = the whole 0.50: the third is at the limit.
    name, sessions = await asyncio.to_thread(new_person, stack, "0.50")
    calls = await upstream_calls(stack)

    results = await sends_at_once(stack, sessions, "sim/stall")
    try:
        assert codes(results) == ["accepted"] * 2 + ["budget_exceeded"] * (SENDS - 2)
        refused = next(got for _, got in results if got["type"] == "error")
        assert "$0.50" in refused["message"]
        assert await stored_for(stack, name) == (2, 4)
        assert await upstream_calls(stack) == calls + 2
    finally:
        await finish(results)
    # Each stopped reply left one usage record, in the same write that ended it.
    assert await count(stack, USAGE_OF, name, "stopped") == 2
    assert await count(stack, "SELECT count(*) FROM chat_usage WHERE user_name = %s", name) == 2


async def test_concurrent_sends_at_the_replies_at_once_limit(stack: Stack) -> None:
    name, sessions = await asyncio.to_thread(new_person, stack)
    calls = await upstream_calls(stack)

    results = await sends_at_once(stack, sessions, "sim/stall")
    try:
        assert codes(results) == ["accepted"] * AT_ONCE + ["rate_limited"] * (SENDS - AT_ONCE)
        assert all(got.get("retry_after", 0) > 0 for _, got in results if got["type"] == "error")
        assert await stored_for(stack, name) == (AT_ONCE, 2 * AT_ONCE)
        assert await upstream_calls(stack) == calls + AT_ONCE
    finally:
        await finish(results)


async def test_concurrent_sends_at_the_per_minute_limit(stack: Stack) -> None:
    name, sessions = await asyncio.to_thread(new_person, stack)
    # A first wave within the replies-at-once limit, finished: 3 of the minute's 5 are used.
    first = await sends_at_once(stack, sessions, "sim/echo", AT_ONCE)
    assert codes(first) == ["accepted"] * AT_ONCE
    await finish(first, stop=False)

    results = await sends_at_once(stack, sessions, "sim/echo")
    try:
        left = PER_MINUTE - AT_ONCE  # fewer than AT_ONCE: only the minute's limit can refuse
        assert codes(results) == ["accepted"] * left + ["rate_limited"] * (SENDS - left)
        for _, got in results:
            if got["type"] == "error":
                assert f"{PER_MINUTE} messages a minute" in got["message"]
                assert 0 < got["retry_after"] <= 60
        assert await stored_for(stack, name) == (PER_MINUTE, 2 * PER_MINUTE)
    finally:
        await finish(results, stop=False)
