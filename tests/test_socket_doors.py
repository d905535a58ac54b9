"""Who may keep a socket, and how fast it may talk: signed-out sessions, password changes,
sockets per user, frames per second. Real consumer behind the real ASGI stack."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client

from chat.database import in_db_pool
from tests.ws import connect, session_socket

pytestmark = pytest.mark.django_db(transaction=True)


async def test_signing_out_closes_that_sessions_sockets_at_once(alice, client):
    ws = await session_socket(client, alice)
    await in_db_pool(client.logout)()
    assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}


async def test_signing_out_leaves_the_other_sessions_sockets_open(alice, client):

    mine = await session_socket(client, alice)
    other_client = Client()
    theirs = await session_socket(other_client, alice)
    await in_db_pool(other_client.logout)()
    assert await theirs.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
    await mine.send_json_to({"type": "ping"})
    assert await mine.receive_json_from(timeout=5) == {"type": "pong"}
    await mine.disconnect()


async def test_a_password_changed_elsewhere_closes_the_socket_at_once(alice, client):
    ws = await session_socket(client, alice)

    def change_password() -> None:
        alice.set_password("a-new-password-42")
        alice.save()

    await in_db_pool(change_password)()
    assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}


async def test_a_session_ended_unannounced_closes_the_socket_at_a_later_frame(
    alice, client, settings
):
    from django.contrib.sessions.models import Session

    settings.SESSION_RECHECK = 0  # every frame checks
    ws = await session_socket(client, alice)
    await ws.send_json_to({"type": "ping"})
    assert await ws.receive_json_from(timeout=5) == {"type": "pong"}
    # Deleted behind the app's back (an expired-session cleanup, a database restore): no signal.
    await Session.objects.all().adelete()
    await ws.send_json_to({"type": "ping"})
    assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}


async def test_a_user_with_too_many_sockets_is_refused_with_4429(alice, settings):
    settings.WS_MAX_SOCKETS_PER_USER = 2
    first, second = await connect(alice), await connect(alice)
    from chat.consumers import ChatConsumer

    third = WebsocketCommunicator(ChatConsumer.as_asgi(), "/ws/chat/")
    third.scope["user"] = alice
    connected, _ = await third.connect()
    assert connected
    assert await third.receive_output(timeout=5) == {"type": "websocket.close", "code": 4429}
    await first.disconnect()
    fourth = await connect(alice)  # a closed socket frees its place
    await second.disconnect()
    await fourth.disconnect()


async def test_frames_faster_than_the_limit_are_refused_and_the_socket_stays(alice, settings):
    settings.WS_FRAMES_PER_SECOND = 1.0
    settings.WS_FRAME_BURST = 3
    ws = await connect(alice)
    for _ in range(3):
        await ws.send_json_to({"type": "ping"})
        assert await ws.receive_json_from(timeout=5) == {"type": "pong"}
    await ws.send_json_to({"type": "stop", "conversation": "abc", "client_id": "x1"})
    refused = await ws.receive_json_from(timeout=5)
    assert refused["type"] == "error" and refused["code"] == "rate_limited"
    assert 0 < refused["retry_after"] <= 1.0
    assert refused["conversation"] == "abc" and refused["client_id"] == "x1"
    await ws.disconnect()


async def test_a_database_failure_during_a_frame_is_answered_and_the_socket_lives_on(
    alice, monkeypatch
):
    from django.db import OperationalError

    from chat import tokens
    from chat.replies.hub import get_hub
    from tests.protocol import send_frame

    def database_gone(user: object) -> None:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(tokens, "resolve", database_gone)  # the first query of a send
    ws = await connect(alice)
    frame = send_frame("hello")
    await ws.send_json_to(frame)
    error = await ws.receive_json_from(timeout=5)
    assert (error["type"], error["code"], error["client_id"]) == (
        "error",
        "internal_error",
        frame["client_id"],
    )
    await ws.send_json_to({"type": "ping"})
    assert await ws.receive_json_from(timeout=5) == {"type": "pong"}
    await ws.disconnect()
    hub = await get_hub()
    assert alice.pk not in hub._users, "the closed socket is still registered"
