"""Deleting a conversation while its reply streams: the HTTP delete stops the reply at once (the
same stop the socket's `stop` sends, through the hub), undo brings back the stopped reply with
its text, and a deleted conversation cannot be subscribed to or written to."""

from __future__ import annotations

import pytest
from django.test import AsyncClient

from chat.database import in_db_pool
from chat.models import Conversation, Message
from tests.protocol import send_frame, streamed_text
from tests.ws import connect, frames_until

pytestmark = pytest.mark.django_db(transaction=True)


async def test_deleting_during_a_reply_stops_it_and_undo_keeps_its_text(alice, alice_token, nobox):
    ws = await connect(alice)
    await ws.send_json_to(send_frame("tell me a long story", model="sim/long"))
    frames = await frames_until(ws, "delta")
    conversation = frames[0]["conversation"]
    client = AsyncClient()
    await in_db_pool(client.force_login)(alice)

    deleted = await client.post(f"/api/conversations/{conversation}/delete")
    frames += await frames_until(ws, "done", timeout=5)

    reply_id = frames[-1]["reply"]
    assert deleted.status_code == 200
    assert deleted.json()["stopped_reply"] == reply_id
    done = frames[-1]["message"]
    assert done["status"] == "stopped"
    stored = await Message.objects.aget(public_id=reply_id)
    assert stored.status == "stopped"
    assert stored.content and stored.content == streamed_text(frames, reply_id)

    # While deleted, the socket cannot reach it.
    await ws.send_json_to({"type": "subscribe", "conversation": conversation})
    refused = (await frames_until(ws, "error"))[-1]
    assert (refused["code"], refused["message"]) == ("not_found", "No such conversation.")
    await ws.send_json_to(send_frame("more", conversation=conversation, model="sim/echo"))
    refused = (await frames_until(ws, "error"))[-1]
    assert refused["code"] == "not_found"
    assert await Message.objects.filter(conversation__public_id=conversation).acount() == 2

    restored = await client.post(f"/api/conversations/{conversation}/restore")

    assert restored.status_code == 200
    await ws.send_json_to({"type": "subscribe", "conversation": conversation})
    history = (await frames_until(ws, "history"))[-1]
    reply = next(m for m in history["messages"] if m["id"] == reply_id)
    assert (reply["status"], reply["content"]) == ("stopped", stored.content)
    assert (await Conversation.objects.aget(public_id=conversation)).deleted_at is None
    await ws.disconnect()


async def test_a_resent_send_of_a_deleted_conversation_is_refused(alice, alice_token, nobox):
    ws = await connect(alice)
    frame = send_frame("hello", model="sim/echo")
    await ws.send_json_to(frame)
    conversation = (await frames_until(ws, "done"))[0]["conversation"]
    client = AsyncClient()
    await in_db_pool(client.force_login)(alice)
    assert (await client.post(f"/api/conversations/{conversation}/delete")).status_code == 200

    await ws.send_json_to(frame)  # the same client_id again, as after a reconnect

    refused = (await frames_until(ws, "error"))[-1]
    assert refused["code"] == "not_found"
    await ws.disconnect()
