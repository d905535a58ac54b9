"""Helpers for driving the chat consumer with Channels' WebsocketCommunicator (the frames
themselves, and what a page makes of them: tests/protocol.py)."""

from __future__ import annotations

import json
from typing import Any

from channels.testing import WebsocketCommunicator

from chat.consumers import ChatConsumer


async def connect(
    user: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(ChatConsumer.as_asgi(), "/ws/chat/", headers=headers)
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    hello = await communicator.receive_json_from(timeout=5)
    assert hello == {"type": "hello"}
    return communicator


async def session_socket(client: Any, user: Any) -> WebsocketCommunicator:
    """A socket through the whole ASGI stack (origin check, session cookie), signed in as `user`
    by the Django test `client`'s session; returned once it said `hello`."""
    from chat.database import in_db_pool
    from noboxweb.asgi import application

    await in_db_pool(client.force_login)(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    communicator = WebsocketCommunicator(
        application,
        "/ws/chat/",
        headers=[(b"origin", b"http://localhost"), (b"host", b"localhost"), (b"cookie", cookie)],
    )
    connected, _ = await communicator.connect()
    assert connected
    assert await communicator.receive_json_from(timeout=5) == {"type": "hello"}
    return communicator


async def frames_until(
    communicator: WebsocketCommunicator, frame_type: str, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Every frame received up to and including the first of `frame_type`."""
    frames = []
    while True:
        frame = await communicator.receive_json_from(timeout=timeout)
        frames.append(frame)
        if frame["type"] == frame_type:
            return frames


async def send_raw(communicator: WebsocketCommunicator, payload: Any) -> None:
    await communicator.send_to(
        text_data=payload if isinstance(payload, str) else json.dumps(payload)
    )
