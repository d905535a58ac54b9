"""Shared links over HTTP: the token, the owner's pages, the shared page under both policies,
its headers, what it shows and hides, continuing in one's own account, and the admin."""

from __future__ import annotations

import base64
import json
import re
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from chat import sharing, tokens
from chat.conversations import purge_deleted
from chat.models import (
    Attachment,
    AuditEvent,
    Conversation,
    Message,
    ShareLink,
    ShareSettings,
    User,
    share_token_hash,
)
from tests.rows import finish

pytestmark = pytest.mark.django_db


def add_turn(conversation: Conversation, question: str, answer: str, **reply: Any) -> Message:
    """A finished turn (user message, then the reply with `reply`'s fields); returns the reply."""
    seq = conversation.next_seq
    Message.objects.create(
        conversation=conversation,
        seq=seq,
        role="user",
        author=conversation.owner,
        content=question,
        attachments=reply.pop("attachments", []),
    )
    answer_row = Message.objects.create(
        conversation=conversation,
        seq=seq + 1,
        role="assistant",
        content=answer,
        model="sim/echo",
        token_source="own",
        **reply,
    )
    conversation.next_seq = seq + 2
    conversation.save(update_fields=["next_seq"])
    return answer_row


@pytest.fixture
def alice_chat(alice: User) -> Conversation:
    alice.first_name, alice.last_name = "Alice", "Liddell"
    alice.save()
    conversation = Conversation.objects.create(owner=alice, title="Rabbit holes")
    add_turn(
        conversation,
        "Show me a picture",
        "**Here** it is",
        prompt_tokens=10,
        completion_tokens=20,
        total_tokens=30,
        cost=Decimal("0.00123"),
    )
    add_turn(
        conversation,
        "And then?",
        "It was cut",
        status="error",
        error_code="invalid_token",
        error_message="Nobox rejected your token: open Settings.",
    )
    return conversation


def as_user(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def as_alice(alice: User) -> Client:
    return as_user(alice)


@pytest.fixture
def as_bob(bob: User) -> Client:
    return as_user(bob)


def make_link(conversation: Conversation, kind: str = "snapshot", **options: Any) -> str:
    made = sharing.create_link(
        conversation.owner,
        conversation,
        kind=kind,
        expires_in=options.pop("expires_in", None),
        show_owner_name=options.pop("show_owner_name", False),
        show_cost=options.pop("show_cost", False),
    )
    return made.token


def anyone_may_view(allowed: bool) -> None:
    policy = ShareSettings.current()
    policy.audience = ShareSettings.Audience.ANYONE if allowed else ShareSettings.Audience.MEMBERS
    policy.save()


def page_data(response: Any) -> dict[str, Any]:
    found = re.search(
        r'<script id="page-data" type="application/json">(.*?)</script>',
        response.content.decode(),
        re.S,
    )
    assert found, "the page has no page data"
    data: dict[str, Any] = json.loads(found.group(1))
    return data


# --- the token ------------------------------------------------------------------------------------


def test_ten_thousand_links_are_unique_and_none_is_stored_in_clear(alice, alice_chat):
    made = [sharing.new_link(alice, alice_chat, kind="live") for _ in range(10_000)]
    ShareLink.objects.bulk_create([m.link for m in made], batch_size=1000)
    tokens = [m.token for m in made]

    assert len(set(tokens)) == 10_000
    # 32 random bytes, URL-safe base64: 43 characters, 256 bits.
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", token) for token in tokens)
    stored = list(ShareLink.objects.values_list("token_hash", flat=True))
    assert sorted(stored) == sorted(share_token_hash(token) for token in tokens)
    # Nothing in the table holds a token: every column of every row, as the database has it.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ShareLink._meta.db_table}")
        dump = "\n".join(" ".join(str(value) for value in row) for row in cursor.fetchall())
    leaked = [token for token in tokens if token in dump]
    assert not leaked, f"{len(leaked)} tokens are stored in clear"


def test_a_token_is_not_derived_from_any_id(alice, alice_chat):
    first = sharing.create_link(
        alice, alice_chat, kind="live", expires_in=None, show_owner_name=False, show_cost=False
    )
    second = sharing.create_link(
        alice, alice_chat, kind="live", expires_in=None, show_owner_name=False, show_cost=False
    )
    assert first.token != second.token
    for token in (first.token, second.token):
        assert alice_chat.public_id not in token and first.link.public_id not in token
    assert ShareLink.objects.for_token(first.token) == first.link
    assert ShareLink.objects.for_token(first.link.token_hash) is None  # the hash opens nothing


# --- the owner's pages ----------------------------------------------------------------------------


def test_the_owner_creates_a_link_and_sees_it_once(as_alice, alice_chat):
    response = as_alice.post(
        f"/c/{alice_chat.public_id}/share",
        {"kind": "live", "expires": "7d", "show_owner_name": "on"},
    )
    assert response.status_code == 200
    url = re.search(r'id="share-url" class="share-url" readonly value="([^"]+)"', response.text)
    assert url, response.text
    token = url.group(1).rsplit("/s/", 1)[1]
    link = ShareLink.objects.get()
    assert (link.kind, link.show_owner_name, link.show_cost) == ("live", True, False)
    assert link.token_hash == share_token_hash(token)
    assert link.expires_at is not None
    assert timedelta(days=6, hours=23) < link.expires_at - timezone.now() <= timedelta(days=7)
    assert "no-store" in response["Cache-Control"]
    event = AuditEvent.objects.get(action=AuditEvent.Action.SHARE_CREATED)
    assert event.actor_name == "alice" and link.public_id in event.detail
    assert token not in event.detail

    listing = as_alice.get("/shares/")
    assert link.public_id in listing.text and "Rabbit holes" in listing.text
    assert token not in listing.text, "the list never shows a token again"


def test_a_snapshot_is_the_default_and_a_bad_choice_is_an_error(as_alice, alice_chat):
    form = as_alice.get(f"/c/{alice_chat.public_id}/share")
    assert form.status_code == 200 and 'value="snapshot"' in form.text
    bad = as_alice.post(f"/c/{alice_chat.public_id}/share", {"kind": "edit", "expires": "1y"})
    assert bad.status_code == 400
    assert "Select a valid choice" in bad.text
    assert not ShareLink.objects.exists()


def test_the_chat_page_offers_sharing_from_the_menu_and_each_row(as_alice, alice_chat):
    page = as_alice.get(f"/c/{alice_chat.public_id}/").text
    share_url = f"/c/{alice_chat.public_id}/share"
    assert page.count(f'href="{share_url}"') == 2  # the header menu and the sidebar row


def test_it_rejects_other_users(as_bob, alice_chat):
    assert as_bob.get(f"/c/{alice_chat.public_id}/share").status_code == 404
    assert as_bob.post(f"/c/{alice_chat.public_id}/share", {"kind": "live"}).status_code == 404
    token = make_link(alice_chat)
    link = ShareLink.objects.get()
    assert as_bob.post(f"/shares/{link.public_id}/revoke").status_code == 404
    assert link.public_id not in as_bob.get("/shares/").text
    link.refresh_from_db()
    assert link.revoked_at is None
    assert ShareLink.objects.for_token(token) is not None


def test_owner_pages_need_a_signed_in_user(client, alice_chat):
    make_link(alice_chat)
    link = ShareLink.objects.get()
    for method, path in [
        ("get", f"/c/{alice_chat.public_id}/share"),
        ("post", f"/c/{alice_chat.public_id}/share"),
        ("get", "/shares/"),
        ("post", f"/shares/{link.public_id}/revoke"),
    ]:
        response = getattr(client, method)(path)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert ShareLink.objects.count() == 1 and ShareLink.objects.get().revoked_at is None


def test_creating_and_revoking_need_a_csrf_token(alice, alice_chat):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post(f"/c/{alice_chat.public_id}/share", {"kind": "live"}).status_code == 403
    make_link(alice_chat)
    link = ShareLink.objects.get()
    assert client.post(f"/shares/{link.public_id}/revoke").status_code == 403
    link.refresh_from_db()
    assert link.revoked_at is None


def test_revoking_is_audited_and_the_link_is_gone_at_once(as_alice, alice_chat):
    token = make_link(alice_chat)
    assert as_alice.get(f"/s/{token}").status_code == 200
    link = ShareLink.objects.get()
    response = as_alice.post(f"/shares/{link.public_id}/revoke")
    assert response.status_code == 302
    assert as_alice.get(f"/s/{token}").status_code == 404
    event = AuditEvent.objects.get(action=AuditEvent.Action.SHARE_REVOKED)
    assert event.actor_name == "alice" and link.public_id in event.detail
    listing = as_alice.get("/shares/").text
    assert "share-state-revoked" in listing
    # Revoking twice is harmless and not audited twice.
    as_alice.post(f"/shares/{link.public_id}/revoke")
    assert AuditEvent.objects.filter(action=AuditEvent.Action.SHARE_REVOKED).count() == 1


def test_the_list_shows_views_and_the_last_view(as_alice, as_bob, alice_chat):
    token = make_link(alice_chat)
    for _ in range(3):
        as_bob.get(f"/s/{token}")
    link = ShareLink.objects.get()
    assert link.view_count == 3 and link.last_viewed_at is not None
    listing = as_alice.get("/shares/").text
    row = re.search(rf'<tr data-link="{link.public_id}">.*?</tr>', listing, re.S)
    assert row and '<td class="share-views">3</td>' in row.group(0)


def test_deleting_the_conversation_kills_its_links(as_alice, alice_chat):
    token = make_link(alice_chat)
    as_alice.post(f"/c/{alice_chat.public_id}/delete")
    # Dead at once; the rows go when the undo window has passed and the conversation is purged.
    assert as_alice.get(f"/s/{token}").status_code == 404
    Conversation.objects.filter(pk=alice_chat.pk).update(
        deleted_at=timezone.now() - timedelta(minutes=1)
    )
    purge_deleted()
    assert not ShareLink.objects.exists()


# --- the shared page ------------------------------------------------------------------------------


@pytest.mark.parametrize("anyone", [True, False])
def test_signed_in_members_view_under_both_policies(as_bob, alice_chat, anyone):
    anyone_may_view(anyone)
    token = make_link(alice_chat)
    response = as_bob.get(f"/s/{token}")
    assert response.status_code == 200
    assert [m["content"] for m in page_data(response)["messages"]][:2] == [
        "Show me a picture",
        "**Here** it is",
    ]


def test_anonymous_visitors_view_only_when_anyone_may(client, alice_chat):
    token = make_link(alice_chat)
    assert ShareSettings.current().audience == "members", "members only is the default"
    response = client.get(f"/s/{token}")
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next=/s/{token}"
    # Under members-only a stranger cannot tell a working link from a made-up one.
    assert client.get("/s/made-up-token").status_code == 302
    assert ShareLink.objects.get().view_count == 0

    anyone_may_view(True)
    response = client.get(f"/s/{token}")
    assert response.status_code == 200
    assert "Here" in json.dumps(page_data(response))
    assert "Continue in my account" not in response.text
    assert client.get("/s/made-up-token").status_code == 404


def test_the_shared_page_is_private_unindexed_and_unframeable(client, alice_chat):
    anyone_may_view(True)
    token = make_link(alice_chat)
    for path in (f"/s/{token}", "/s/no-such-token"):
        response = client.get(path)
        assert "noindex" in response["X-Robots-Tag"]
        assert "no-store" in response["Cache-Control"]
        assert response["Referrer-Policy"] == "no-referrer"
        assert response["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
        assert "script-src 'self'" in response["Content-Security-Policy"]
        assert '<meta name="robots" content="noindex, nofollow">' in response.text


def test_revoked_expired_and_unknown_links_are_404(as_bob, alice, alice_chat):
    revoked = make_link(alice_chat)
    sharing.revoke_link(ShareLink.objects.get(), alice)
    expired = make_link(alice_chat, expires_in=timedelta(hours=1))
    ShareLink.objects.filter(expires_at__isnull=False).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    for token in (revoked, expired, "x" * 43, "x" * 500):
        assert as_bob.get(f"/s/{token}").status_code == 404


def test_a_deactivated_owners_links_stop_working(as_bob, alice, alice_chat):
    token = make_link(alice_chat)
    alice.is_active = False
    alice.save()
    assert as_bob.get(f"/s/{token}").status_code == 404


def test_the_page_shows_nothing_of_the_owner_they_did_not_choose(as_bob, alice, alice_chat):
    token = make_link(alice_chat)
    response = as_bob.get(f"/s/{token}")
    text = response.text
    for secret in ("alice@example.com", "Liddell", "alice", alice_chat.public_id):
        assert secret not in text.replace(f"/s/{token}", ""), secret
    assert '"own"' not in text and "token_source" not in text
    data = page_data(response)
    assert set(data) == {"live", "socket_path", "messages"}
    assert all("author" not in m and "owner" not in m for m in data["messages"])
    assert all(m["cost"] is None and m["usage"] is None for m in data["messages"])
    failed = data["messages"][3]
    assert failed["status"] == "error" and "Settings" not in failed["error"]["message"]


def test_the_owner_may_show_their_name_and_the_cost(as_bob, alice_chat):
    token = make_link(alice_chat, show_owner_name=True, show_cost=True)
    response = as_bob.get(f"/s/{token}")
    assert '<span class="shared-owner">Alice Liddell</span>' in response.text
    assert "alice@example.com" not in response.text
    reply = page_data(response)["messages"][1]
    assert reply["cost"] == "0.00123000" and reply["usage"]["total_tokens"] == 30


def test_incomplete_replies_reach_the_page_as_they_are(as_bob, alice_chat):
    add_turn(alice_chat, "Go on", "Half a sent", status="stopped")
    add_turn(alice_chat, "More", "Cut off", status="interrupted")
    messages = page_data(as_bob.get(f"/s/{make_link(alice_chat)}"))["messages"]
    assert [m["status"] for m in messages if m["role"] == "assistant"] == [
        "complete",
        "error",
        "stopped",
        "interrupted",
    ]


def test_a_snapshot_excludes_later_messages_and_a_live_link_does_not(as_bob, alice_chat):
    snapshot = make_link(alice_chat, "snapshot")
    live = make_link(alice_chat, "live")
    add_turn(alice_chat, "A later question", "A later answer")
    snapshot_page = as_bob.get(f"/s/{snapshot}")
    assert "A later" not in snapshot_page.text
    assert len(page_data(snapshot_page)["messages"]) == 4
    assert page_data(snapshot_page)["live"] is False
    live_data = page_data(as_bob.get(f"/s/{live}"))
    assert live_data["messages"][-1]["content"] == "A later answer"
    assert live_data["socket_path"] == f"/ws/share/{live}/"


def test_a_snapshot_leaves_out_a_turn_still_being_written(as_bob, alice_chat):
    seq = alice_chat.next_seq
    Message.objects.create(conversation=alice_chat, seq=seq, role="user", content="Writing?")
    Message.objects.create(
        conversation=alice_chat, seq=seq + 1, role="assistant", status="streaming", content="Par"
    )
    alice_chat.next_seq = seq + 2
    alice_chat.save()
    data = page_data(as_bob.get(f"/s/{make_link(alice_chat)}"))
    assert [m["seq"] for m in data["messages"]] == [1, 2, 3, 4]


# --- no write through a link ----------------------------------------------------------------------


def state_of(conversation: Conversation) -> list[tuple[Any, ...]]:
    rows = Conversation.objects.filter(pk=conversation.pk).values_list()
    messages = Message.objects.filter(conversation=conversation).order_by("seq").values_list()
    return [*rows, *messages]


@pytest.mark.parametrize("anyone", [True, False])
def test_no_method_on_any_share_url_writes_to_the_conversation(client, as_bob, alice_chat, anyone):
    anyone_may_view(anyone)
    token = make_link(alice_chat, "live")
    before = state_of(alice_chat)
    links_before = ShareLink.objects.values_list("revoked_at", "expires_at", "kind").get()
    for visitor in (client, as_bob):
        for method in ("post", "put", "patch", "delete", "options", "trace", "head"):
            response = getattr(visitor, method)(f"/s/{token}", {"text": "injected"})
            assert response.status_code == 405, (method, response.status_code)
        for method in ("get", "put", "patch", "delete", "options", "trace", "head"):
            response = getattr(visitor, method)(f"/s/{token}/continue")
            assert response.status_code == 405, (method, response.status_code)
        # The one POST there is writes to the visitor's own account, never to the original.
        visitor.post(f"/s/{token}/continue", {"text": "injected"})
    assert state_of(alice_chat) == before
    assert ShareLink.objects.values_list("revoked_at", "expires_at", "kind").get() == links_before
    assert not Message.objects.filter(content="injected").exists()


# --- continue in my account -----------------------------------------------------------------------


def test_continue_copies_what_the_link_shows_into_a_new_conversation(as_bob, bob, alice_chat):
    token = make_link(alice_chat, "snapshot")
    add_turn(alice_chat, "Not shared", "Not shared either")
    before = state_of(alice_chat)

    response = as_bob.post(f"/s/{token}/continue")
    copy = Conversation.objects.get(owner=bob)
    assert response.status_code == 302 and response["Location"] == f"/c/{copy.public_id}/"
    copied = list(copy.messages.order_by("seq"))
    assert [(m.seq, m.role, m.content) for m in copied] == [
        (1, "user", "Show me a picture"),
        (2, "assistant", "**Here** it is"),
        (3, "user", "And then?"),
        (4, "assistant", "It was cut"),
    ]
    assert copied[0].author == bob
    assert copied[1].cost is None and copied[1].token_source == ""
    assert copied[3].status == "error" and "Settings" not in copied[3].error_message
    assert copy.next_seq == 5 and copy.title == "Rabbit holes"
    assert state_of(alice_chat) == before
    # Bob's copy is his: his chat page shows it.
    assert as_bob.get(f"/c/{copy.public_id}/").status_code == 200


def test_continue_needs_a_signed_in_member_and_a_working_link(client, as_bob, alice, alice_chat):
    anyone_may_view(True)
    token = make_link(alice_chat)
    response = client.post(f"/s/{token}/continue")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    sharing.revoke_link(ShareLink.objects.get(), alice)
    gone = as_bob.post(f"/s/{token}/continue")
    assert gone.status_code == 404 and "noindex" in gone["X-Robots-Tag"]
    assert Conversation.objects.count() == 1


# --- the admin ------------------------------------------------------------------------------------


@pytest.fixture
def as_admin(django_user_model: type[User]) -> Client:
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "root-pw")
    return as_user(admin)


def test_admins_see_every_link_and_revoke_any(as_admin, alice_chat):
    token = make_link(alice_chat, "live")
    link = ShareLink.objects.get()
    listing = as_admin.get("/admin/chat/sharelink/")
    assert listing.status_code == 200
    for shown in (link.public_id, "alice", "Rabbit holes", "Live", "active"):
        assert shown in listing.text, shown
    assert token not in listing.text and link.token_hash not in listing.text
    detail = as_admin.get(f"/admin/chat/sharelink/{link.pk}/change/")
    assert detail.status_code == 200 and link.token_hash not in detail.text

    response = as_admin.post(
        "/admin/chat/sharelink/",
        {"action": "revoke_links", "_selected_action": [link.pk]},
    )
    assert response.status_code == 302
    link.refresh_from_db()
    assert link.revoked_at is not None
    event = AuditEvent.objects.get(action=AuditEvent.Action.SHARE_REVOKED)
    assert event.actor_name == "root" and event.target_name == "alice"
    assert as_admin.get(f"/s/{token}").status_code == 404


def test_the_admin_sets_who_may_open_links(as_admin, client, alice_chat):
    token = make_link(alice_chat)
    assert as_admin.get("/admin/chat/sharesettings/").status_code == 200
    response = as_admin.post(
        "/admin/chat/sharesettings/1/change/", {"audience": ShareSettings.Audience.ANYONE}
    )
    assert response.status_code == 302
    assert client.get(f"/s/{token}").status_code == 200
    assert as_admin.get("/admin/chat/sharesettings/add/").status_code == 403


# --- files of shared messages ----------------------------------------------------------------


PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(20))


@pytest.fixture
def chat_with_file(alice):
    from chat.incoming_frames import parse_send
    from chat.replies.turns import store_turn

    tokens.store_token(alice, "sk-alice-files-0001")
    image = {"type": "file", "file": {"name": "dot.png", "data": base64.b64encode(PNG).decode()}}
    frame = {"client_id": "f1", "conversation": None, "text": "see", "model": "m/x"}
    turn = store_turn(alice, parse_send(frame | {"attachments": [image]}))
    finish(turn.reply.pk, status="complete", content="a dot")
    return turn.conversation


def test_a_viewer_reaches_shared_files_through_the_link_only(client, alice, bob, chat_with_file):
    made = sharing.create_link(
        alice,
        chat_with_file,
        kind="snapshot",
        expires_in=None,
        show_owner_name=False,
        show_cost=False,
    )
    client.force_login(bob)
    page = client.get(f"/s/{made.token}")
    [shown] = [m for m in page_data(page)["messages"] if m["attachments"]]
    url = shown["attachments"][0]["url"]
    file = Attachment.objects.get()

    assert url == f"/s/{made.token}/files/{file.public_id}"
    response = client.get(url)
    assert response.status_code == 200 and b"".join(response.streaming_content) == PNG
    assert "no-store" in response["Cache-Control"]
    # Not through the owner's own door, and not once the link is revoked.
    assert client.get(f"/files/{file.public_id}").status_code == 404
    sharing.revoke_link(made.link, alice)
    assert client.get(url).status_code == 404


def test_continuing_a_shared_chat_copies_its_files(client, alice, bob, chat_with_file):
    made = sharing.create_link(
        alice,
        chat_with_file,
        kind="live",
        expires_in=None,
        show_owner_name=False,
        show_cost=False,
    )
    copy = sharing.continue_in_account(made.link, bob)

    original, copied = Attachment.objects.order_by("pk")
    assert copied.message.conversation == copy and copied.stored_name != original.stored_name
    client.force_login(bob)
    response = client.get(f"/files/{copied.public_id}")
    assert b"".join(response.streaming_content) == PNG
    # Deleting the original leaves the copy whole.
    chat_with_file.delete()
    assert b"".join(client.get(f"/files/{copied.public_id}").streaming_content) == PNG


# --- links and branches -------------------------------------------------------------------------


@pytest.fixture
def two_branches(alice, chat_with_file):
    """Alice's chat with a file, then its first message edited (the edit keeps a copy of the
    file): a snapshot link made on each branch, and the files of each."""
    from chat.consumers import switch_branch
    from chat.incoming_frames import parse_send
    from chat.replies.turns import store_turn

    first = chat_with_file.messages.get(seq=1)
    on_first = make_link(chat_with_file)
    frame = {"client_id": "f2", "conversation": chat_with_file.public_id, "model": "m/x"}
    edited = store_turn(alice, parse_send(frame | {"text": "see again", "edit": first.public_id}))
    finish(edited.reply.pk, status="complete", content="the same dot")
    on_second = make_link(chat_with_file)
    # The owner goes back to the first version: what the links show must not follow.
    switch_branch.__wrapped__(chat_with_file.pk, first.public_id)  # type: ignore[attr-defined]
    return {
        "first": (on_first, first.files.get().public_id),
        "second": (on_second, edited.user_message.files.get().public_id),
    }


def test_a_snapshot_stays_on_its_branch_when_the_owner_switches(
    as_bob, chat_with_file, two_branches
):
    (on_first, _), (on_second, _) = two_branches["first"], two_branches["second"]
    live = make_link(chat_with_file, "live")

    shown = {
        name: [m["content"] for m in page_data(as_bob.get(f"/s/{token}"))["messages"]]
        for name, token in (("first", on_first), ("second", on_second), ("live", live))
    }

    assert shown["first"] == ["see", "a dot"]
    assert shown["second"] == ["see again", "the same dot"]
    assert shown["live"] == ["see", "a dot"]  # a live link follows the owner's branch


def test_a_file_of_another_branch_is_not_found_through_a_link(as_bob, two_branches):
    (on_first, first_file), (on_second, second_file) = two_branches["first"], two_branches["second"]

    assert as_bob.get(f"/s/{on_first}/files/{first_file}").status_code == 200
    assert as_bob.get(f"/s/{on_second}/files/{second_file}").status_code == 200
    assert as_bob.get(f"/s/{on_first}/files/{second_file}").status_code == 404
    assert as_bob.get(f"/s/{on_second}/files/{first_file}").status_code == 404


# --- continue in my account: its cost and its failures --------------------------------------------


def chat_of_files(alice: User, turns: int) -> Conversation:
    """A chat of `turns` finished turns, each question with a file."""
    from chat.incoming_frames import parse_send
    from chat.replies.turns import store_turn

    tokens.store_token(alice, "sk-alice-files-0001")
    image = {"type": "file", "file": {"name": "dot.png", "data": base64.b64encode(PNG).decode()}}
    conversation = None
    for i in range(turns):
        frame = {"client_id": f"t{turns}-{i}", "conversation": conversation, "model": "m/x"}
        turn = store_turn(alice, parse_send(frame | {"text": f"see {i}", "attachments": [image]}))
        finish(turn.reply.pk, status="complete", content=f"dot {i}")
        conversation = turn.conversation.public_id
    return Conversation.objects.get(public_id=conversation)


def live_link(conversation: Conversation) -> ShareLink:
    return ShareLink.objects.get(token_hash=share_token_hash(make_link(conversation, "live")))


def test_continuing_costs_the_same_statements_for_two_turns_with_files_as_for_five(alice, bob):
    from django.test.utils import CaptureQueriesContext

    def statements(turns: int) -> int:
        link = live_link(chat_of_files(alice, turns))
        with CaptureQueriesContext(connection) as queries:
            copy = sharing.continue_in_account(link, bob)
        copied = Attachment.objects.filter(message__conversation=copy)
        assert copied.count() == turns
        assert all(
            m.attachments[0]["id"] == m.files.get().public_id for m in copy.messages.all()[::2]
        )
        return len(queries)

    # One by one, each message with a file was three more statements (22 for five turns).
    assert statements(2) == statements(5)


def test_a_continue_that_fails_leaves_no_copied_file_behind(alice, bob, monkeypatch):
    from django.core.files.storage import default_storage
    from django.db import DatabaseError

    link = live_link(chat_of_files(alice, 2))
    before = set(default_storage.listdir("attachments")[1])

    def refused(*args: object, **kwargs: object) -> None:
        raise DatabaseError("the database refused the files")  # e.g. a disk full

    monkeypatch.setattr(Attachment.objects, "bulk_create", refused)
    with pytest.raises(DatabaseError):
        sharing.continue_in_account(link, bob)

    assert set(default_storage.listdir("attachments")[1]) == before
    assert not Conversation.objects.filter(owner=bob).exists()
