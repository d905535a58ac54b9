"""The chat WebSocket, driven with WebsocketCommunicator against the real database, the
in-process hub and the Nobox simulator over real HTTP."""

from __future__ import annotations

import base64
import json
from typing import Any, TypeVar

import httpx
import pytest
from channels.testing import WebsocketCommunicator
from django.core.files.storage import default_storage
from django.db.models import Model

from chat import tokens
from chat.consumers import ChatConsumer
from chat.database import in_db_pool
from chat.models import Attachment, Conversation, Message, User
from chat.replies import generation, sweep
from tests.protocol import send_frame, streamed_text
from tests.rows import streaming_reply
from tests.ws import connect, frames_until, send_raw, session_socket

M = TypeVar("M", bound=Model)

pytestmark = pytest.mark.django_db(transaction=True)


async def upstream_calls(simulator_url: str) -> int:
    async with httpx.AsyncClient() as client:
        stats = (await client.get(simulator_url.removesuffix("/_f_") + "/_sim/stats")).json()
    return int(stats["chat_completions"])


async def send_and_finish(
    communicator: WebsocketCommunicator, frame: dict[str, Any]
) -> list[dict[str, Any]]:
    await communicator.send_json_to(frame)
    return await frames_until(communicator, "done")


def rows(model: type[M], **filters: object) -> list[M]:
    return list(model._default_manager.filter(**filters).order_by("pk"))


async def test_it_streams_a_reply_and_stores_both_messages(alice, alice_token, nobox):
    ws = await connect(alice)
    frames = await send_and_finish(ws, send_frame("hello there", model="sim/echo"))

    ack = next(f for f in frames if f["type"] == "ack")
    user_msg, reply = ack["messages"]
    assert user_msg["content"] == "hello there" and reply["status"] == "streaming"
    done = frames[-1]
    assert done["message"]["status"] == "complete"
    assert done["message"]["content"] == streamed_text(frames, reply["id"])
    assert "hello there" in done["message"]["content"]
    assert sum(1 for f in frames if f["type"] == "delta") >= 1

    stored = await in_db_pool(rows)(Message, conversation__public_id=ack["conversation"])
    assert [m.role for m in stored] == ["user", "assistant"]
    assert stored[1].content == done["message"]["content"]
    assert stored[1].finish_reason == "stop"
    assert stored[1].total_tokens and stored[1].total_tokens > 0
    await ws.disconnect()


async def test_it_records_usage_and_cost_from_the_models_price(alice, alice_token, nobox):
    ws = await connect(alice)
    frames = await send_and_finish(ws, send_frame("price me", model="openai/gpt-4o"))
    message = frames[-1]["message"]
    assert message["usage"]["completion_tokens"] > 0
    assert message["cost"] is not None and float(message["cost"]) > 0
    await ws.disconnect()


async def test_stop_ends_the_reply_at_once_and_keeps_its_text(alice, alice_token, nobox):
    ws = await connect(alice)
    await ws.send_json_to(send_frame("tell me a long story", model="sim/long"))
    frames = await frames_until(ws, "delta")
    conversation = frames[0]["conversation"]
    await ws.send_json_to({"type": "stop", "conversation": conversation})
    frames += await frames_until(ws, "done", timeout=5)

    done = frames[-1]["message"]
    assert done["status"] == "stopped"
    stored = await Message.objects.aget(public_id=done["id"])
    assert stored.status == "stopped"
    assert stored.content == done["content"] == streamed_text(frames, done["id"])
    assert stored.content  # the partial answer is kept
    await ws.disconnect()


async def test_closing_the_socket_does_not_lose_the_reply(alice, alice_token, nobox):
    ws = await connect(alice)
    await ws.send_json_to(send_frame("keep going without me", model="sim/echo"))
    ack = (await frames_until(ws, "ack"))[-1]
    await ws.disconnect()

    await generation.wait_for_running()
    reply = await Message.objects.aget(public_id=ack["messages"][1]["id"])
    assert reply.status == "complete"
    assert "keep going without me" in reply.content


async def test_a_second_socket_joining_mid_reply_sees_the_same_text(alice, alice_token, nobox):
    first = await connect(alice)
    await first.send_json_to(send_frame("a long one please", model="sim/long"))
    frames_a = await frames_until(first, "delta")
    conversation = frames_a[0]["conversation"]

    second = await connect(alice)
    await second.send_json_to({"type": "subscribe", "conversation": conversation})
    frames_b = await frames_until(second, "done", timeout=30)
    frames_a += await frames_until(first, "done", timeout=30)

    reply_id = frames_a[-1]["reply"]
    final = frames_a[-1]["message"]["content"]
    assert streamed_text(frames_a, reply_id) == final
    assert streamed_text(frames_b, reply_id) == final
    assert any(f["type"] == "snapshot" for f in frames_b)
    await first.disconnect()
    await second.disconnect()


async def test_a_resent_send_creates_nothing_twice(alice, alice_token, nobox, simulator_url):
    before = await upstream_calls(simulator_url)
    ws = await connect(alice)
    frame = send_frame("only once", model="sim/echo")
    await send_and_finish(ws, frame)
    await ws.send_json_to(frame)
    again = await frames_until(ws, "history")

    ack = next(f for f in again if f["type"] == "ack")
    assert ack["duplicate"] is True
    assert await Message.objects.filter(client_id=frame["client_id"]).acount() == 1
    assert await Message.objects.acount() == 2
    assert await upstream_calls(simulator_url) == before + 1
    await ws.disconnect()


async def test_a_second_send_while_streaming_is_busy(alice, alice_token, nobox):
    ws = await connect(alice)
    await ws.send_json_to(send_frame("first", model="sim/long"))
    conversation = (await frames_until(ws, "ack"))[-1]["conversation"]
    second = send_frame("second", model="sim/echo", conversation=conversation)
    await ws.send_json_to(second)
    frames = await frames_until(ws, "error")

    assert frames[-1]["code"] == "busy"
    assert frames[-1]["client_id"] == second["client_id"]
    assert not await Message.objects.filter(client_id=second["client_id"]).aexists()
    await ws.send_json_to({"type": "stop", "conversation": conversation})
    await frames_until(ws, "done")
    await ws.disconnect()


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ("not json", "bad_frame"),
        ("[1, 2]", "bad_frame"),
        ({"no": "type"}, "unknown_type"),
        ({"type": "dance"}, "unknown_type"),
        ({"type": "send", "client_id": "x1", "text": "", "model": "sim/echo"}, "invalid"),
        ({"type": "send", "client_id": "x1", "text": 42, "model": "sim/echo"}, "invalid"),
        ({"type": "send", "client_id": "bad id!", "text": "hi", "model": "sim/echo"}, "invalid"),
        ({"type": "send", "client_id": "x1", "text": "hi"}, "invalid"),
        (
            {"type": "send", "client_id": "x1", "text": "hi", "model": "m", "temperature": "hot"},
            "invalid",
        ),
        (
            {"type": "send", "client_id": "x1", "text": "hi", "model": "m", "temperature": True},
            "invalid",
        ),
        (
            {"type": "send", "client_id": "x1", "text": "hi", "model": "m", "max_tokens": 0},
            "invalid",
        ),
        (
            {"type": "send", "client_id": "x1", "text": "hi", "model": "m", "conversation": 7},
            "invalid",
        ),
        ({"type": "send", "client_id": "x1", "text": "x" * 100_001, "model": "m"}, "too_large"),
        (
            {
                "type": "send",
                "client_id": "x1",
                "text": "hi",
                "model": "m",
                "attachments": [
                    {"type": "image_url", "image_url": {"url": "https://evil.test/x.png"}}
                ],
            },
            "invalid",
        ),
        (
            {
                "type": "send",
                "client_id": "x1",
                "text": "hi",
                "model": "m",
                "attachments": [
                    {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "ogg"}}
                ],
            },
            "invalid",
        ),
        ({"type": "subscribe"}, "invalid"),
        ({"type": "stop", "conversation": ["a"]}, "invalid"),
    ],
)
async def test_bad_frames_get_a_clear_error_and_store_nothing(alice, alice_token, payload, code):
    ws = await connect(alice)
    await send_raw(ws, payload)
    error = await ws.receive_json_from(timeout=5)
    assert error["type"] == "error"
    assert error["code"] == code
    assert error["message"]
    assert await Message.objects.acount() == 0
    # The socket stays usable after a bad frame.
    await ws.send_json_to({"type": "ping"})
    assert await ws.receive_json_from(timeout=5) == {"type": "pong"}
    await ws.disconnect()


async def test_binary_frames_are_refused(alice):
    ws = await connect(alice)
    await ws.send_to(bytes_data=b"\x00\x01")
    error = await ws.receive_json_from(timeout=5)
    assert (error["type"], error["code"]) == ("error", "bad_frame")
    await ws.disconnect()


async def test_an_oversized_frame_is_refused(alice, settings):
    settings.MAX_FRAME_BYTES = 2048
    ws = await connect(alice)
    await send_raw(ws, json.dumps(send_frame("y" * 4096)))
    error = await ws.receive_json_from(timeout=5)
    assert error["code"] == "too_large"
    await ws.disconnect()


async def test_another_users_conversation_is_not_found(
    alice, alice_token, bob, bob_token, nobox, simulator_url
):
    ws_alice = await connect(alice)
    done = await send_and_finish(ws_alice, send_frame("alice's secret", model="sim/echo"))
    conversation = done[0]["conversation"]
    before = await upstream_calls(simulator_url)

    ws_bob = await connect(bob)
    for frame in (
        {"type": "subscribe", "conversation": conversation},
        send_frame("let me in", conversation=conversation),
        {"type": "stop", "conversation": conversation},
    ):
        await ws_bob.send_json_to(frame)
        error = await ws_bob.receive_json_from(timeout=5)
        assert (error["type"], error["code"]) == ("error", "not_found")
        assert "alice's secret" not in json.dumps(error)

    assert await upstream_calls(simulator_url) == before
    assert await Message.objects.filter(conversation__owner=bob).acount() == 0
    assert await Message.objects.acount() == 2
    await ws_alice.disconnect()
    await ws_bob.disconnect()


async def test_without_a_token_nothing_is_stored_or_sent(charlie, nobox, simulator_url):
    before = await upstream_calls(simulator_url)
    ws = await connect(charlie)
    await ws.send_json_to(send_frame("hello?"))
    error = await ws.receive_json_from(timeout=5)
    assert error["code"] == "no_token"
    assert await Message.objects.acount() == 0
    assert await Conversation.objects.acount() == 0
    assert await upstream_calls(simulator_url) == before
    await ws.disconnect()


async def test_an_unreadable_token_asks_to_re_enter_it(alice, alice_token, settings):
    from cryptography.fernet import Fernet

    settings.NOBOX_TOKEN_KEYS = [Fernet.generate_key().decode()]
    ws = await connect(alice)
    await ws.send_json_to(send_frame("hello?"))
    error = await ws.receive_json_from(timeout=5)
    assert error["code"] == "token_unreadable"
    assert "re-enter" in error["message"]
    await ws.disconnect()


async def _reply_for(user: User, token: str, model: str) -> dict[str, Any]:
    await in_db_pool(tokens.store_token)(user, token)
    ws = await connect(user)
    frames = await send_and_finish(ws, send_frame("hi", model=model))
    await ws.disconnect()
    message: dict[str, Any] = frames[-1]["message"]
    return message


@pytest.mark.parametrize(
    ("token", "model", "code", "hint"),
    [
        ("broke-wallet-token", "sim/echo", "insufficient_funds", "Top it up"),
        ("invalid-token-xyz", "sim/echo", "invalid_token", "Replace it in Settings"),
        ("sk-good-token", "no/such-model", "model_not_found", "Pick another model"),
        ("ratelimited-token", "sim/echo", "rate_limited", "Wait"),
        ("sk-good-token", "sim/server-error", "upstream_error", "Retry"),
        ("sk-good-token", "sim/html-error", "upstream_error", "Retry"),
    ],
)
async def test_each_nobox_failure_becomes_a_message_that_says_what_to_do(
    alice, nobox, settings, token, model, code, hint
):
    settings.NOBOX_RETRY_ATTEMPTS = 1
    message = await _reply_for(alice, token, model)
    assert message["status"] == "error"
    assert message["error"]["code"] == code
    assert hint in message["error"]["message"]
    # The user's words are kept whatever happened upstream.
    assert await Message.objects.filter(role="user", content="hi").aexists()


@pytest.mark.parametrize(
    ("model", "code"),
    [("sim/error-mid-stream", "upstream_error"), ("sim/cut", "incomplete_stream")],
)
async def test_a_reply_broken_mid_stream_keeps_its_partial_text(
    alice, nobox, settings, model, code
):
    message = await _reply_for(alice, "sk-good-token", model)
    assert message["status"] == "error"
    assert message["error"]["code"] == code
    assert message["content"]  # partial answer stored and marked
    stored = await Message.objects.aget(public_id=message["id"])
    assert stored.content == message["content"]


async def test_a_stalled_stream_times_out_and_keeps_its_text(alice, nobox, settings):
    settings.NOBOX_STALL_TIMEOUT = 0.5
    message = await _reply_for(alice, "sk-good-token", "sim/stall")
    assert (message["status"], message["error"]["code"]) == ("error", "timeout")
    assert message["content"]


async def test_max_tokens_marks_the_reply_truncated(alice, alice_token, nobox):
    ws = await connect(alice)
    frames = await send_and_finish(ws, send_frame("write a lot", model="sim/long", max_tokens=5))
    message = frames[-1]["message"]
    assert message["status"] == "truncated"
    assert message["finish_reason"] == "length"
    await ws.disconnect()


PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
WAV = b"RIFF$\x00\x00\x00WAVEfmt " + bytes(range(24))
CODE = "def hello():\n    return 'héllo'\n".encode()


def file_part(name: str, data: bytes) -> dict[str, Any]:
    return {"type": "file", "file": {"name": name, "data": base64.b64encode(data).decode()}}


async def sent_upstream(simulator_url: str, text: str) -> dict[str, Any]:
    """The chat completion request the simulator received whose last message says `text`."""
    async with httpx.AsyncClient() as client:
        url = simulator_url.removesuffix("/_f_") + "/_sim/requests"
        bodies = (await client.get(url)).json()
    [body] = [b for b in bodies if text in json.dumps(b["messages"][-1]["content"])]
    return dict(body)


async def test_files_are_stored_apart_and_reach_nobox_as_content_parts(
    alice, alice_token, nobox, simulator_url
):
    ws = await connect(alice)
    files = [file_part("pixel.png", PNG), file_part("tone.wav", WAV), file_part("h.py", CODE)]
    frames = await send_and_finish(ws, send_frame("what is this 7f3a", attachments=files))

    body = await sent_upstream(simulator_url, "what is this 7f3a")
    assert body["messages"][-1]["content"] == [
        {"type": "text", "text": "what is this 7f3a"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(PNG)}"}},
        {"type": "input_audio", "input_audio": {"data": b64(WAV), "format": "wav"}},
        {"type": "text", "text": f"File h.py:\n\n{CODE.decode()}"},
    ]
    # The row and every frame carry references; the bytes are in storage.
    ack = next(f for f in frames if f["type"] == "ack")
    shown = ack["messages"][0]["attachments"]
    assert [(a["type"], a["name"], a["size"]) for a in shown] == [
        ("image", "pixel.png", len(PNG)),
        ("audio", "tone.wav", len(WAV)),
        ("text", "h.py", len(CODE)),
    ]
    assert all(a["url"] == f"/files/{a['id']}" for a in shown)
    assert "base64" not in json.dumps(frames)
    stored = [f async for f in Attachment.objects.order_by("position")]
    assert [default_storage.open(f.stored_name).read() for f in stored] == [PNG, WAV, CODE]
    await ws.disconnect()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_a_file_claiming_to_be_what_it_is_not_is_refused(alice, alice_token, nobox):
    ws = await connect(alice)
    not_an_image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(WAV)}"}}
    binary = file_part("x.bin", bytes(range(256)))
    for attachments, code in [([not_an_image], "unsupported_file"), ([binary], "unsupported_file")]:
        await ws.send_json_to(send_frame("look", attachments=attachments))
        frame = await ws.receive_json_from(timeout=5)
        assert (frame["type"], frame["code"]) == ("error", code)
    assert await Message.objects.acount() == 0
    assert await Attachment.objects.acount() == 0
    await ws.disconnect()


async def test_an_anonymous_socket_is_closed(db):
    from django.contrib.auth.models import AnonymousUser

    communicator = WebsocketCommunicator(ChatConsumer.as_asgi(), "/ws/chat/")
    communicator.scope["user"] = AnonymousUser()
    connected, _ = await communicator.connect()
    # Accepted, then closed with the documented code: a refused handshake reaches a browser as
    # a bare 1006, after which the page would retry forever instead of saying "signed out".
    assert connected
    assert await communicator.receive_output(timeout=5) == {
        "type": "websocket.close",
        "code": 4401,
    }


async def test_a_deactivated_user_is_closed_at_the_next_frame(alice, settings):
    from chat.models import User

    settings.SESSION_RECHECK = 0  # the handshake's check counts for 30 s: every frame checks
    ws = await connect(alice)
    # A bulk update sends no signal, so nothing closes the socket at once: only the check made
    # at each frame can.
    await User.objects.filter(pk=alice.pk).aupdate(is_active=False)
    assert await ws.receive_nothing(timeout=0.2)
    await ws.send_json_to({"type": "ping"})
    output = await ws.receive_output(timeout=5)
    assert output == {"type": "websocket.close", "code": 4403}


async def test_the_handshake_counts_as_the_first_session_check(alice, monkeypatch):
    # Every tab's first frame is a send or a subscribe: it must not wait on a session lookup the
    # handshake has just made.
    import chat.consumers

    checks: list[int] = []
    real = chat.consumers.signed_out_code

    async def counted(user_pk: int, session_key: str | None) -> int | None:
        checks.append(user_pk)
        return await real(user_pk, session_key)

    monkeypatch.setattr(chat.consumers, "signed_out_code", counted)
    ws = await connect(alice)
    await ws.send_json_to({"type": "ping"})
    assert await ws.receive_json_from(timeout=5) == {"type": "pong"}
    assert checks == []
    await ws.disconnect()


async def test_the_socket_refuses_a_foreign_origin(alice):
    from noboxweb.asgi import application

    communicator = WebsocketCommunicator(
        application, "/ws/chat/", headers=[(b"origin", b"https://evil.example")]
    )
    connected, _ = await communicator.connect()
    assert not connected


async def test_a_session_cookie_authenticates_the_socket(alice, client):
    communicator = await session_socket(client, alice)  # asserts the socket said hello
    await communicator.disconnect()


async def test_a_reply_orphaned_by_a_dead_process_is_swept_as_interrupted(alice, settings):
    conversation = await Conversation.objects.acreate(owner=alice)
    ws = await connect(alice)
    await ws.send_json_to({"type": "subscribe", "conversation": conversation.public_id})
    await frames_until(ws, "history")
    # A reply whose process died a minute ago, after this socket started watching.
    orphan = await streaming_reply(alice, "half an ans", 60, conversation)

    await sweep.sweep_and_announce()
    done = (await frames_until(ws, "done", timeout=10))[-1]

    assert done["reply"] == orphan.public_id
    assert (done["message"]["status"], done["message"]["content"]) == ("interrupted", "half an ans")
    await orphan.arefresh_from_db()
    assert (orphan.status, orphan.content) == ("interrupted", "half an ans")
    await ws.disconnect()


async def test_no_reply_is_swept_just_after_this_process_lost_the_database(
    alice, settings, monkeypatch
):
    """Every process's heartbeats go stale while the database is away: a sweep right after it
    comes back would take live replies for orphans."""

    from django.db import OperationalError

    from chat import database

    monkeypatch.setattr(database, "_last_failure", None)  # restored after the test
    stale = await streaming_reply(alice, beat_seconds_ago=60)

    def unreachable() -> None:
        raise OperationalError("connection refused")  # what the driver says of a lost server

    with pytest.raises(OperationalError):
        await in_db_pool(unreachable)()
    assert await sweep.sweep_and_announce() == 0
    await stale.arefresh_from_db()
    assert stale.status == "streaming"

    settings.REPLY_ORPHAN_AFTER = 0.0  # the database has been back long enough
    assert await sweep.sweep_and_announce() == 1


async def test_a_graceful_shutdown_keeps_running_replies_as_interrupted(alice, alice_token, nobox):
    ws = await connect(alice)
    await ws.send_json_to(send_frame("a long one", model="sim/long"))
    frames = await frames_until(ws, "delta")
    frames += await frames_until(ws, "delta")

    await generation.interrupt_running()
    frames += await frames_until(ws, "done")
    message = frames[-1]["message"]
    assert message["status"] == "interrupted"
    stored = await Message.objects.aget(public_id=message["id"])
    assert stored.status == "interrupted"
    assert stored.content and stored.content.startswith(streamed_text(frames[:-1], message["id"]))
    await ws.disconnect()


async def test_stop_from_another_tab_stops_the_reply_for_both(alice, alice_token, nobox):
    first = await connect(alice)
    await first.send_json_to(send_frame("long please", model="sim/long"))
    conversation = (await frames_until(first, "delta"))[0]["conversation"]
    second = await connect(alice)
    await second.send_json_to({"type": "subscribe", "conversation": conversation})
    await frames_until(second, "history")

    await second.send_json_to({"type": "stop", "conversation": conversation})
    done_first = (await frames_until(first, "done", timeout=5))[-1]
    done_second = (await frames_until(second, "done", timeout=5))[-1]
    assert done_first["message"]["status"] == done_second["message"]["status"] == "stopped"
    assert done_first["message"]["content"] == done_second["message"]["content"]
    await first.disconnect()
    await second.disconnect()


async def test_a_reconnecting_socket_resumes_the_reply_in_place(alice, alice_token, nobox):
    first = await connect(alice)
    await first.send_json_to(send_frame("long please", model="sim/long"))
    frames = await frames_until(first, "delta")
    frames += await frames_until(first, "delta")
    ack = next(f for f in frames if f["type"] == "ack")
    user_seq = ack["messages"][0]["seq"]
    await first.disconnect()  # the network drops

    again = await connect(alice)
    await again.send_json_to(
        {"type": "subscribe", "conversation": ack["conversation"], "after_seq": user_seq}
    )
    resumed = await frames_until(again, "done", timeout=30)
    history = resumed[0]
    assert history["type"] == "history"
    assert [m["seq"] for m in history["messages"]] == [user_seq + 1]  # only what it lacked
    final = resumed[-1]["message"]["content"]
    seen_before = streamed_text(frames, ack["messages"][1]["id"])
    assert final.startswith(seen_before)
    assert streamed_text(resumed, ack["messages"][1]["id"]) == final
    await again.disconnect()


async def test_the_text_is_checkpointed_while_it_streams(alice, alice_token, nobox, settings):
    settings.REPLY_CHECKPOINT_INTERVAL = 0.2
    ws = await connect(alice)
    await ws.send_json_to(send_frame("long please", model="sim/long"))
    reply_id = (await frames_until(ws, "ack"))[-1]["messages"][1]["id"]
    checkpoints: set[str] = set()
    while len(checkpoints) < 2:
        row = await Message.objects.aget(public_id=reply_id)
        assert row.status == "streaming", "the reply ended before two checkpoints"
        if row.content:
            checkpoints.add(row.content)
        await ws.receive_json_from(timeout=5)  # keep following the stream
    final = (await frames_until(ws, "done", timeout=30))[-1]["message"]["content"]
    assert all(final.startswith(text) for text in checkpoints)
    await ws.disconnect()


async def test_deactivation_closes_an_open_socket_without_waiting_for_a_frame(alice):
    from chat.sign_out import deactivate_user

    ws = await connect(alice)
    await in_db_pool(deactivate_user)(alice, None)
    output = await ws.receive_output(timeout=5)
    assert output == {"type": "websocket.close", "code": 4403}


@pytest.mark.parametrize(
    ("change", "code"),
    [({"revoked_at": "now"}, "token_revoked"), ({"expires_at": "past"}, "token_expired")],
)
async def test_an_unusable_token_stops_sending_before_any_upstream_call(
    alice, alice_token, nobox, simulator_url, change, code
):
    from datetime import timedelta

    from django.utils import timezone

    from chat.models import NoboxToken

    now = timezone.now()
    values = {"revoked_at": now} if "revoked_at" in change else {"expires_at": now - timedelta(1)}
    await NoboxToken.objects.filter(user=alice).aupdate(**values)
    before = await upstream_calls(simulator_url)
    ws = await connect(alice)
    await ws.send_json_to(send_frame("hello?"))
    error = await ws.receive_json_from(timeout=5)
    assert error["code"] == code
    assert "Settings" in error["message"]
    assert await upstream_calls(simulator_url) == before
    assert await Message.objects.acount() == 0
    await ws.disconnect()


async def test_a_token_nobox_rejects_is_not_used_again(alice, nobox, simulator_url):
    await in_db_pool(tokens.store_token)(alice, "invalid-token-from-the-start")
    ws = await connect(alice)
    first = (await send_and_finish(ws, send_frame("hi")))[-1]["message"]
    assert first["error"]["code"] == "invalid_token"
    before = await upstream_calls(simulator_url)

    await ws.send_json_to(send_frame("again"))
    error = await ws.receive_json_from(timeout=5)
    assert error["code"] == "token_rejected"
    assert "Replace it in Settings" in error["message"]
    assert await upstream_calls(simulator_url) == before
    await ws.disconnect()


async def test_a_reply_on_the_team_token_is_attributed_to_the_user(bob, nobox):
    await in_db_pool(tokens.store_team_token)("sk-team-token-0099", actor=None)
    bob.may_use_team_token = True
    await in_db_pool(bob.save)()
    ws = await connect(bob)
    done = (await send_and_finish(ws, send_frame("on the house")))[-1]["message"]
    assert done["status"] == "complete"
    reply = await Message.objects.select_related("conversation__owner").aget(public_id=done["id"])
    assert reply.token_source == "team"
    assert reply.conversation.owner == bob
    await ws.disconnect()


async def test_when_no_process_answers_the_checkpoint_is_shown(alice):
    # Streaming, heart-beating a moment ago, but no generation task answers `sync`.
    reply = await streaming_reply(alice, "checkpointed text")
    ws = await connect(alice)
    await ws.send_json_to({"type": "subscribe", "conversation": reply.conversation.public_id})
    frames = await frames_until(ws, "snapshot", timeout=10)
    assert frames[-1] == {"type": "snapshot", "reply": reply.public_id, "text": "checkpointed text"}
    await ws.disconnect()


async def test_with_usage_switched_off_the_reply_completes_without_it(
    alice, alice_token, nobox, settings
):
    settings.NOBOX_INCLUDE_USAGE = False
    ws = await connect(alice)
    message = (await send_and_finish(ws, send_frame("no usage please")))[-1]["message"]
    assert message["status"] == "complete"
    assert message["usage"] is None and message["cost"] is None
    await ws.disconnect()


async def test_one_http_client_serves_every_reply_of_a_process(alice, alice_token, nobox):
    from chat.upstream import close_clients, nobox_client

    first = nobox_client()
    ws = await connect(alice)
    await send_and_finish(ws, send_frame("one"))
    await send_and_finish(ws, send_frame("two", conversation=None))
    assert nobox_client() is first
    await ws.disconnect()
    await close_clients()
    assert nobox_client() is not first  # closed on shutdown, a new one after
