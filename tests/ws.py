"""Helpers for driving the chat consumer with Channels' WebsocketCommunicator."""

from __future__ import annotations

import json
import uuid
from typing import Any

from channels.testing import WebsocketCommunicator

from chat.consumers import ChatConsumer


async def connect(user: Any) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(ChatConsumer.as_asgi(), "/ws/chat/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    hello = await communicator.receive_json_from(timeout=5)
    assert hello == {"type": "hello"}
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


def send_frame(
    text: str, model: str = "sim/echo", conversation: str | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "type": "send",
        "client_id": uuid.uuid4().hex,
        "conversation": conversation,
        "text": text,
        "model": model,
        **extra,
    }


def streamed_text(frames: list[dict[str, Any]], reply_id: str) -> str:
    """What a browser following snapshot/delta frames would show for the reply."""
    text = ""
    for frame in frames:
        if frame.get("reply") != reply_id:
            continue
        if frame["type"] == "snapshot":
            text = frame["text"]
        elif frame["type"] == "delta":
            assert frame["offset"] == len(text), "delta leaves a gap or overlaps"
            text += frame["text"]
    return text


async def send_raw(communicator: WebsocketCommunicator, payload: Any) -> None:
    await communicator.send_to(
        text_data=payload if isinstance(payload, str) else json.dumps(payload)
    )
