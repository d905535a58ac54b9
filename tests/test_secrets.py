"""A Nobox token never leaves the server in clear: not in a page, a JSON response, a WebSocket
frame, a log record, the admin's history or the audit trail. One test drives every path that
touches tokens and searches everything it produced."""

from __future__ import annotations

import json
import logging

import pytest
from django.contrib.admin.models import LogEntry
from django.test import AsyncClient

from chat.database import in_db_pool
from chat.models import AuditEvent, Conversation, NoboxToken, User
from tests.protocol import send_frame
from tests.ws import connect, frames_until

pytestmark = pytest.mark.django_db(transaction=True)

NEEDLE = "NEEDLEVALUE"
ALICE_SECRET = f"sk-alice-{NEEDLE}-0042"
BOB_SECRET = f"sk-bob-{NEEDLE}-0043"
TEAM_SECRET = f"sk-team-{NEEDLE}-0044"
REJECTED_SECRET = f"invalid-{NEEDLE}-0045"


async def test_no_token_appears_anywhere(alice, bob, charlie, nobox, caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "chat", "django", "daphne", "channels"):
        caplog.set_level(logging.DEBUG, logger=name)
    seen: list[str] = []
    boss = await in_db_pool(User.objects.create_superuser)("boss", "b@example.com", "boss-pw-1")
    admin, user_client = AsyncClient(), AsyncClient()
    await admin.aforce_login(boss)
    await user_client.aforce_login(alice)

    async def keep(response) -> None:  # a test client response (its type is private to the stubs)
        assert response.status_code < 500, response.status_code
        seen.append(response.content.decode(errors="replace"))

    # A user saves their token; an admin sets, verifies, revokes and views tokens.
    await keep(await user_client.post("/settings/", {"action": "save", "token": ALICE_SECRET}))
    await keep(
        await admin.post(
            "/admin/chat/noboxtoken/add/",
            {"user": bob.pk, "new_token": BOB_SECRET, "expires_at_0": "", "expires_at_1": ""},
        )
    )
    await keep(
        await admin.post(
            "/admin/chat/noboxtoken/add/",
            {"new_token": TEAM_SECRET, "expires_at_0": "", "expires_at_1": ""},
        )
    )
    ids = [pk async for pk in NoboxToken.objects.values_list("pk", flat=True)]
    await keep(
        await admin.post(
            "/admin/chat/noboxtoken/", {"action": "verify_tokens", "_selected_action": ids}
        )
    )

    # Chatting: a good reply, and one whose token Nobox rejects.
    ws = await connect(alice)
    await ws.send_json_to(send_frame("hello", model="openai/gpt-4o"))
    frames = await frames_until(ws, "done")
    await ws.disconnect()
    await in_db_pool(_store_rejected_token)(charlie)
    ws = await connect(charlie)
    await ws.send_json_to(send_frame("hello"))
    frames += await frames_until(ws, "done")
    await ws.send_json_to(send_frame("again"))
    frames += [await ws.receive_json_from(timeout=5)]
    await ws.disconnect()
    seen += [json.dumps(frame) for frame in frames]

    await keep(
        await admin.post(
            "/admin/chat/noboxtoken/", {"action": "revoke_tokens", "_selected_action": ids[:1]}
        )
    )

    # Every page and JSON response that shows anything about tokens, users or chats.
    conversation = await Conversation.objects.filter(owner=alice).afirst()
    assert conversation is not None
    for url in ["/", f"/c/{conversation.public_id}/", "/settings/", "/api/models"]:
        await keep(await user_client.get(url))
    for url in [
        "/admin/",
        "/admin/chat/noboxtoken/",
        "/admin/chat/auditevent/",
        "/admin/chat/user/",
        f"/admin/chat/user/{bob.pk}/change/",
        f"/admin/chat/conversation/{conversation.pk}/change/",
    ]:
        await keep(await admin.get(url))
    for pk in ids:
        await keep(await admin.get(f"/admin/chat/noboxtoken/{pk}/change/"))
        await keep(await admin.get(f"/admin/chat/noboxtoken/{pk}/history/"))

    seen += [entry.change_message + entry.object_repr async for entry in LogEntry.objects.all()]
    seen += [f"{e.detail} {e.actor_name} {e.target_name}" async for e in AuditEvent.objects.all()]
    seen += [record.getMessage() + str(record.args) for record in caplog.records]

    assert len(seen) > 30
    assert any("…0042" in text for text in seen)  # the last four are shown where useful
    leaks = [text[:200] for text in seen if NEEDLE in text]
    assert leaks == []
    assert any(frame.get("code") == "token_rejected" for frame in frames)


def _store_rejected_token(user: User) -> None:
    from chat import tokens

    tokens.store_token(user, REJECTED_SECRET, verified=False)
