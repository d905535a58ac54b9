"""Hostile and careless frames through the real consumer: each gets its documented error frame,
nothing is stored, no traceback is logged, and the socket stays usable (issue 8)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from chat.models import Message
from tests.protocol import send_frame
from tests.ws import connect, send_raw

pytestmark = pytest.mark.django_db(transaction=True)

CASES = [
    pytest.param('{"type": ["send"], "client_id": "c1"}', "unknown_type", id="type-is-a-list"),
    pytest.param('{"type": {"send": 1}, "client_id": "c1"}', "unknown_type", id="type-is-object"),
    pytest.param('{"type": 7}', "unknown_type", id="type-is-a-number"),
    pytest.param("[" * 50_000 + "]" * 50_000, "bad_frame", id="deep-list"),
    pytest.param(
        '{"type": "send", "text": ' + '{"a":' * 50_000 + "1" + "}" * 50_000 + "}",
        "bad_frame",
        id="deep-object",
    ),
    pytest.param(
        json.dumps(send_frame("cut in an emoji \ud83d", client_id="c1")),
        "invalid",
        id="lone-surrogate-in-text",
    ),
    pytest.param(
        json.dumps(send_frame("hi", client_id="c1", system="\udc00")),
        "invalid",
        id="lone-surrogate-in-system",
    ),
    pytest.param(
        json.dumps(
            send_frame(
                "hi",
                client_id="c1",
                attachments=[
                    {"type": "input_audio", "input_audio": {"data": "***", "format": "wav"}}
                ],
            )
        ),
        "invalid",
        id="audio-not-base64",
    ),
]


@pytest.mark.parametrize(("payload", "code"), CASES)
async def test_a_hostile_frame_gets_its_error_and_the_socket_stays_usable(
    alice: Any, alice_token: Any, payload: str, code: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    ws = await connect(alice)
    await send_raw(ws, payload)
    error = await ws.receive_json_from(timeout=5)
    assert (error["type"], error["code"]) == ("error", code)
    assert error.get("client_id", "c1") == "c1"
    await ws.send_json_to({"type": "ping"})
    assert await ws.receive_json_from(timeout=5) == {"type": "pong"}
    assert await Message.objects.acount() == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    await ws.disconnect()
