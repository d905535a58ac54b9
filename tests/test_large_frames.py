"""Large frames over a real socket to a real daphne (tests.servers.app_server, i.e. noboxweb.serve):
the documented limits (docs/protocol.md) are the ones the server enforces, and going over one is
answered (an `error` frame, or close code 1009), never a silently dropped connection."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from tests.servers import app_env, app_server, create_user, login, manage, simulator

MIB = 1024 * 1024
# The documented defaults: the test proves these numbers, not whatever settings say.
MAX_FRAME_BYTES = 12 * MIB
MAX_ATTACHMENT_BYTES = 8 * MIB
TIMEOUT = 20.0

Site = tuple[str, httpx.Cookies]  # base URL, a signed-in user's cookies


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The app under noboxweb.serve, and the cookies of a signed-in user with a token."""
    var_dir: Path = tmp_path_factory.mktemp("large-frames")
    with simulator() as sim_url:
        env = app_env(var_dir, NOBOX_BASE_URL=sim_url)
        manage(env, "migrate", "--noinput")
        create_user(env, "alice", "alice-password", token="sk-large-frames")
        with app_server(env, log_path=var_dir / "app.log") as (base_url, _proc):
            yield base_url, login(base_url, "alice", "alice-password")


async def open_socket(site: Site) -> ClientConnection:
    base_url, cookies = site
    ws = await asyncio.wait_for(
        connect(
            base_url.replace("http://", "ws://", 1) + "/ws/chat/",
            origin=Origin(base_url),
            additional_headers={"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())},
            max_size=None,  # the ack echoes the attachment back
            proxy=None,
        ),
        TIMEOUT,
    )
    assert await frame_of(ws, "hello")
    return ws


async def frame_of(ws: ClientConnection, frame_type: str) -> dict[str, Any]:
    """The next frame of `frame_type` (skipping history, deltas and the like)."""
    while True:
        frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        if frame["type"] in (frame_type, "error"):
            return frame


def send_with_image(size: int) -> dict[str, Any]:
    # A PNG signature, then noise: the server goes by the bytes.
    data = base64.b64encode(b"\x89PNG\r\n\x1a\n" + os.urandom(size - 8)).decode()
    return {
        "type": "send",
        "client_id": uuid.uuid4().hex,
        "conversation": None,
        "text": "what is in this picture?",
        "attachments": [
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}
        ],
        "model": "sim/echo",
        "system": None,
        "temperature": None,
        "max_tokens": None,
    }


async def still_answers(ws: ClientConnection) -> None:
    await ws.send(json.dumps({"type": "ping"}))
    assert (await frame_of(ws, "pong"))["type"] == "pong"


async def test_a_2_mb_frame_is_stored_and_acknowledged(site: Site) -> None:
    ws = await open_socket(site)
    frame = send_with_image(int(1.5 * MIB))
    assert len(json.dumps(frame)) > 2 * 10**6
    await ws.send(json.dumps(frame))
    ack = await frame_of(ws, "ack")
    assert (ack["type"], ack["client_id"]) == ("ack", frame["client_id"])
    stored = ack["messages"][0]["attachments"]
    assert [part["type"] for part in stored] == ["image"]
    await still_answers(ws)
    await ws.close()


async def test_an_attachment_over_its_limit_is_too_large_and_the_socket_stays(site: Site) -> None:
    ws = await open_socket(site)
    frame = send_with_image(MAX_ATTACHMENT_BYTES + 3)
    assert len(json.dumps(frame)) < MAX_FRAME_BYTES  # daphne lets it through: the app answers
    await ws.send(json.dumps(frame))
    error = await frame_of(ws, "error")
    assert (error["code"], error["client_id"]) == ("too_large", frame["client_id"])
    assert "8 MiB" in error["message"]
    await still_answers(ws)
    await ws.close()


async def test_a_frame_just_under_the_frame_limit_reaches_the_app(site: Site) -> None:
    ws = await open_socket(site)
    frame = {"type": "send", "client_id": uuid.uuid4().hex, "text": "x", "pad": ""}
    frame["pad"] = "p" * (MAX_FRAME_BYTES - 100 - len(json.dumps(frame)))
    await ws.send(json.dumps(frame))
    # No model: refused as invalid by the app, which proves the whole frame reached it.
    error = await frame_of(ws, "error")
    assert (error["code"], error["client_id"]) == ("invalid", frame["client_id"])
    await still_answers(ws)
    await ws.close()


async def test_a_frame_over_the_frame_limit_is_closed_with_1009(site: Site) -> None:
    ws = await open_socket(site)
    with pytest.raises(ConnectionClosed) as closed:
        # The server may close while the frame is still going out (a loaded machine): then the
        # send itself sees the close.
        await ws.send(json.dumps({"type": "send", "text": "x" * (MAX_FRAME_BYTES + MIB)}))
        await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert closed.value.rcvd is not None, "dropped without a close frame"
    assert closed.value.rcvd.code == 1009
    # Only that socket: the server serves the next one as usual.
    again = await open_socket(site)
    await still_answers(again)
    await again.close()
