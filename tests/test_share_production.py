"""A live share link on the production-shaped stack (tests/stack.py): two daphne processes on
PostgreSQL and Redis. The reply runs on process 1; the link's viewers are on process 2."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator

import httpx
import psycopg
import pytest
from websockets.asyncio.client import connect
from websockets.typing import Origin

from tests.stack import (
    FRAME_TIMEOUT,
    FULL_REPLY,
    PROMPT,
    ChatClient,
    Stack,
    assert_shown,
    running_stack,
)

pytestmark = pytest.mark.production

LINK_GONE = 4404


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("share")) as running:
        with psycopg.connect(running.database_url, autocommit=True) as conn:
            # Anyone with the link: the viewers below are strangers with no session.
            conn.execute(
                "INSERT INTO chat_sharesettings (id, audience) VALUES (1, 'anyone') "
                "ON CONFLICT (id) DO UPDATE SET audience = 'anyone'"
            )
        yield running


@pytest.fixture
async def owner(stack: Stack) -> AsyncIterator[ChatClient]:
    client = await ChatClient.open("owner (process 1)", stack.url1, stack.cookies1)
    yield client
    await client.close()


def _post(stack: Stack, path: str, data: dict[str, str]) -> httpx.Response:
    """A form posted by the owner through process 1, with its CSRF token."""
    with httpx.Client(base_url=stack.url1, cookies=stack.cookies1, timeout=30) as client:
        return client.post(path, data={**data, "csrfmiddlewaretoken": stack.cookies1["csrftoken"]})


async def live_link(stack: Stack, conversation: str) -> tuple[str, str]:
    """(token, link id) of a new live link, made through the owner's page."""
    response = await asyncio.to_thread(
        _post, stack, f"/c/{conversation}/share", {"kind": "live", "expires": ""}
    )
    assert response.status_code == 200, response.text
    url = re.search(r'readonly value="[^"]*/s/([A-Za-z0-9_-]+)"', response.text)
    assert url, response.text
    token = url.group(1)
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT public_id FROM chat_sharelink ORDER BY id DESC LIMIT 1"
        ).fetchone()
    assert row is not None
    return token, str(row[0])


async def viewer(stack: Stack, token: str) -> ChatClient:
    """A stranger's viewer socket on process 2, subscribed."""
    ws_url = stack.url2.replace("http://", "ws://", 1) + f"/ws/share/{token}/"
    ws = await asyncio.wait_for(
        connect(ws_url, origin=Origin(stack.url2), proxy=None), FRAME_TIMEOUT
    )
    client = ChatClient("viewer (process 2)", ws)
    await client.expect("hello")
    await client.send({"type": "subscribe", "after_seq": 0})
    await client.expect("history")
    return client


async def test_a_viewer_on_the_other_process_joins_mid_reply(stack: Stack, owner: ChatClient):
    conversation = await owner.new_conversation()
    token, _ = await live_link(stack, conversation)
    _, reply = await owner.send_message(PROMPT, "sim/long", conversation)
    await owner.wait_until(
        lambda: owner.page.deltas.get(reply, 0) >= 3, "three deltas", FRAME_TIMEOUT
    )

    watcher = await viewer(stack, token)
    history = await watcher.expect("history")
    [joined] = [m for m in history["messages"] if m["id"] == reply]
    assert joined["status"] == "streaming", "the viewer must join while the reply is written"
    done = await watcher.done(reply)
    await owner.done(reply)

    # The text so far came as a snapshot from process 1 (through Redis), then the rest as live
    # deltas, with no gap and no overlap (the client records any as a problem).
    assert watcher.page.snapshots.get(reply), f"no snapshot: {watcher._summary()}"
    assert watcher.page.deltas.get(reply, 0) > 0, "no live delta after joining"
    assert done["status"] == "complete" and done["content"] == FULL_REPLY
    assert_shown(reply, FULL_REPLY, watcher, owner)
    assert done["cost"] is None and all("conversation" not in f for f in watcher.frames)
    await watcher.close()


async def test_revoking_on_one_process_closes_a_viewer_on_the_other(
    stack: Stack, owner: ChatClient
):
    conversation = await owner.new_conversation()
    token, link_id = await live_link(stack, conversation)
    watcher = await viewer(stack, token)

    response = await asyncio.to_thread(_post, stack, f"/shares/{link_id}/revoke", {})
    assert response.status_code == 302

    await watcher.wait_until(lambda: watcher.closed, "the socket closed", FRAME_TIMEOUT)
    assert watcher.ws.close_code == LINK_GONE
    async with httpx.AsyncClient(base_url=stack.url2) as client:
        assert (await client.get(f"/s/{token}")).status_code == 404
