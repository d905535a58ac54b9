"""The conversation list's endpoints (chat/conversation_views.py) on the real database: rename,
pin, archive, delete with undo and the purge after it, owner checks and CSRF."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from chat import conversations
from chat.access import NotFound, conversation_for
from chat.models import Conversation, Message, User

pytestmark = pytest.mark.django_db


def chat_of(owner: User, title: str = "A chat", **fields: Any) -> Conversation:
    conversation = Conversation.objects.create(owner=owner, title=title, next_seq=3, **fields)
    Message.objects.create(conversation=conversation, seq=1, role="user", content="question")
    Message.objects.create(conversation=conversation, seq=2, role="assistant", content="answer")
    return conversation


def api(conversation: Conversation | str, action: str) -> str:
    public_id = conversation if isinstance(conversation, str) else conversation.public_id
    return f"/api/conversations/{public_id}/{action}"


@pytest.fixture
def alice_client(client: Client, alice: User) -> Client:
    client.force_login(alice)
    return client


def test_rename_pin_and_archive_answer_with_the_conversation(alice_client, alice):
    chat = chat_of(alice)

    renamed = alice_client.post(api(chat, "rename"), {"title": "  Trip plans  "}).json()
    pinned = alice_client.post(api(chat, "pin"), {"pinned": "true"}).json()
    archived = alice_client.post(api(chat, "archive"), {"archived": "true"}).json()

    assert renamed["conversation"]["title"] == "Trip plans"
    assert pinned["conversation"]["pinned"] is True
    assert archived["conversation"] == {**pinned["conversation"], "archived": True}
    chat.refresh_from_db()
    assert chat.title == "Trip plans"
    assert None not in (chat.pinned_at, chat.archived_at)

    alice_client.post(api(chat, "pin"), {"pinned": "false"})
    alice_client.post(api(chat, "archive"), {"archived": "false"})
    chat.refresh_from_db()
    assert chat.pinned_at is None and chat.archived_at is None


def test_bad_input_is_refused_with_a_clear_error_and_changes_nothing(alice_client, alice):
    chat = chat_of(alice, "Kept")

    blank = alice_client.post(api(chat, "rename"), {"title": "   "})
    long = alice_client.post(api(chat, "rename"), {"title": "x" * 201})
    flag = alice_client.post(api(chat, "pin"), {"pinned": "yes"})
    archive_flag = alice_client.post(api(chat, "archive"), {})
    query = alice_client.get("/api/conversations", {"q": "q" * 201})

    assert blank.status_code == long.status_code == 400
    assert blank.json()["error"]["code"] == "invalid_title"
    assert flag.status_code == archive_flag.status_code == 400
    assert flag.json()["error"] == {
        "code": "invalid_flag",
        "message": "Send pinned=true or pinned=false.",
    }
    assert query.status_code == 400 and query.json()["error"]["code"] == "query_too_long"
    chat.refresh_from_db()
    assert chat.title == "Kept" and chat.pinned_at is None


def test_another_users_conversation_is_a_404_for_every_action(client, alice, bob):
    chat = chat_of(alice, "Alice's")
    client.force_login(bob)

    answers = [
        client.post(api(chat, action), data)
        for action, data in [
            ("rename", {"title": "mine now"}),
            ("pin", {"pinned": "true"}),
            ("archive", {"archived": "true"}),
            ("delete", {}),
            ("restore", {}),
        ]
    ]

    assert [a.status_code for a in answers] == [404] * 5
    assert answers[0].json() == {"error": {"code": "not_found", "message": "No such conversation."}}
    chat.refresh_from_db()
    assert chat.title == "Alice's" and chat.pinned_at is None and chat.deleted_at is None


def test_signed_out_requests_get_a_json_401_and_get_is_not_allowed(client, alice):
    chat = chat_of(alice)

    assert client.post(api(chat, "delete")).status_code == 401
    assert client.get("/api/conversations", {"q": "x"}).json()["error"]["code"] == (
        "unauthenticated"
    )
    client.force_login(alice)
    assert client.get(api(chat, "delete")).status_code == 405
    assert Conversation.objects.live().filter(pk=chat.pk).exists()


def test_posts_without_the_csrf_token_are_refused(alice):
    chat = chat_of(alice)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)

    assert strict.post(api(chat, "delete")).status_code == 403
    assert strict.post(api(chat, "rename"), {"title": "x"}).status_code == 403
    chat.refresh_from_db()
    assert chat.deleted_at is None and chat.title == "A chat"


def test_a_deleted_conversation_is_gone_everywhere_until_undone(alice_client, alice):
    chat = chat_of(alice, "Secret plans")

    answer = alice_client.post(api(chat, "delete")).json()

    assert answer["conversation"] == chat.public_id and answer["stopped_reply"] is None
    assert answer["undo_seconds"] == 10.0
    with pytest.raises(NotFound):
        conversation_for(alice, chat.public_id)
    assert alice_client.get(f"/c/{chat.public_id}/").status_code == 404
    assert chat.public_id not in alice_client.get("/").content.decode()
    assert alice_client.post(api(chat, "rename"), {"title": "x"}).status_code == 404
    assert alice_client.get("/api/conversations", {"q": "Secret"}).json()["results"] == []

    restored = alice_client.post(api(chat, "restore")).json()

    assert restored["conversation"]["id"] == chat.public_id
    assert conversation_for(alice, chat.public_id).title == "Secret plans"
    assert chat.public_id in alice_client.get("/").content.decode()
    # Undoing twice: it is no longer deleted, so there is nothing to restore.
    assert alice_client.post(api(chat, "restore")).status_code == 404


def test_undo_is_refused_after_the_window_and_the_purge_removes_it(alice_client, alice, settings):
    settings.CONVERSATION_UNDO_SECONDS = 5
    old, recent, kept = chat_of(alice, "old"), chat_of(alice, "recent"), chat_of(alice, "kept")
    Conversation.objects.filter(pk=old.pk).update(deleted_at=timezone.now() - timedelta(seconds=6))
    alice_client.post(api(recent, "delete"))

    late = alice_client.post(api(old, "restore"))

    assert late.status_code == 410
    assert late.json()["error"] == {
        "code": "undo_expired",
        "message": "Too late to undo: the conversation was deleted for good.",
    }
    out = io.StringIO()
    call_command("sweep_replies", stdout=out)
    assert "Purged 1 deleted conversations." in out.getvalue()
    assert not Conversation.objects.filter(pk=old.pk).exists()
    assert not Message.objects.filter(conversation_id=old.pk).exists()
    # Inside its window the other one waits; a second purge (another process) finds nothing.
    assert conversations.purge_deleted() == 0
    assert Conversation.objects.filter(pk=recent.pk).exists()
    assert Conversation.objects.live().filter(pk=kept.pk).exists()
    assert alice_client.post(api(old, "restore")).status_code == 404


def test_the_purge_waits_for_a_reply_still_marked_streaming(alice):
    chat = chat_of(alice)
    Message.objects.create(
        conversation=chat, seq=3, role="assistant", status="streaming", heartbeat_at=timezone.now()
    )
    Conversation.objects.filter(pk=chat.pk).update(deleted_at=timezone.now() - timedelta(minutes=1))

    assert conversations.purge_deleted() == 0
    Message.objects.filter(conversation=chat).update(status="stopped")
    assert conversations.purge_deleted() == 1
    assert not Message.objects.filter(conversation_id=chat.pk).exists()


def test_the_sidebar_lists_pinned_first_and_marks_archived(alice_client, alice):
    newest = chat_of(alice, "Newest")
    pinned = chat_of(alice, "Pinned one", pinned_at=timezone.now())
    Conversation.objects.filter(pk=pinned.pk).update(updated_at=timezone.now() - timedelta(days=30))
    archived = chat_of(alice, "Archived one", archived_at=timezone.now())

    page = alice_client.get("/").content.decode()

    # Most recent first, except that pinned ones lead however old they are.
    assert page.index("Pinned one") < page.index("Archived one") < page.index("Newest")
    archived_row = page[page.rindex("<li", 0, page.index("Archived one")) :]
    assert archived_row.startswith(f'<li class="conversation-row" data-id="{archived.public_id}"')
    assert " data-archived>" in archived_row[: archived_row.index("</li>")]
    assert " data-pinned><a " in page[page.rindex("<li", 0, page.index("Pinned one")) :][:300]
    assert newest.public_id in page
