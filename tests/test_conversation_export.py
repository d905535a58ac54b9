"""Export (Markdown, JSON) and import: a conversation goes out whole and comes back as a new one."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import pytest
from django.core.files.storage import default_storage

from chat import tokens
from chat.incoming_frames import parse_send
from chat.models import Attachment, Conversation, User
from chat.replies.turns import store_turn
from tests.conftest import ALICE_TOKEN
from tests.rows import finish

pytestmark = pytest.mark.django_db(transaction=True)

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(30))


@pytest.fixture
def chat(alice: User) -> Conversation:
    """Two finished turns, the first with a file; the second reply stopped."""
    tokens.store_token(alice, ALICE_TOKEN)
    frame = {"client_id": "a", "conversation": None, "text": "Look at $x^2$", "model": "m/x"}
    image = {"type": "file", "file": {"name": "dot.png", "data": base64.b64encode(PNG).decode()}}
    first = store_turn(alice, parse_send(frame | {"attachments": [image]}))
    finish(
        first.reply.pk,
        content="A *square*.",
        status="complete",
        prompt_tokens=3,
        completion_tokens=2,
        total_tokens=5,
        cost=Decimal("0.00012"),
    )
    second = store_turn(
        alice, parse_send(frame | {"client_id": "b", "conversation": first.conversation.public_id})
    )
    finish(second.reply.pk, content="Half", status="stopped")
    Conversation.objects.filter(pk=first.conversation.pk).update(system_prompt="Be brief.")
    return Conversation.objects.get(pk=first.conversation.pk)


def exported(client: Any, chat: Conversation, kind: str) -> Any:
    response = client.get(f"/c/{chat.public_id}/export.{kind}")
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment; filename=")
    return response


def test_markdown_reads_as_the_conversation(client, alice, chat):
    client.force_login(alice)
    text = exported(client, chat, "md").content.decode()

    assert text.startswith("# Look at $x^2$\n")
    assert "> System prompt: Be brief." in text
    assert text.count("## You ·") == 2 and text.count("## Assistant (m/x) ·") == 2
    assert "*Attached: dot.png (image)*" in text
    assert "A *square*." in text and "*Reply stopped: incomplete*" in text


def test_json_round_trips_into_a_new_conversation(client, alice, chat):
    client.force_login(alice)
    data = exported(client, chat, "json").json()
    assert [m["role"] for m in data["messages"]] == ["user", "assistant"] * 2
    assert data["messages"][0]["attachments"][0]["data"] == base64.b64encode(PNG).decode()

    response = client.post("/import", json.dumps(data), content_type="application/json")

    assert response.status_code == 200
    copy = Conversation.objects.exclude(pk=chat.pk).get()
    assert response.json()["url"] == f"/c/{copy.public_id}/"
    assert copy.owner == alice and copy.system_prompt == "Be brief."
    again = exported(client, copy, "json").json()
    for key in ("format", "version", "title", "model", "system_prompt", "messages"):
        assert again[key] == data[key], key
    # The file is a new file of the copy, with the same bytes.
    files = Attachment.objects.order_by("pk")
    assert files.count() == 2 and files[0].stored_name != files[1].stored_name
    assert default_storage.open(files[1].stored_name).read() == PNG


def test_every_branch_round_trips_and_markdown_reads_the_visible_one(client, alice, chat):
    client.force_login(alice)
    first = chat.messages.get(seq=1)
    edit = {"client_id": "e", "conversation": chat.public_id, "text": "Look again", "model": "m"}
    edited = store_turn(alice, parse_send(edit | {"edit": first.public_id}))
    finish(edited.reply.pk, content="Still a square.", status="complete")
    data = exported(client, chat, "json").json()
    assert [(m["seq"], m["parent"]) for m in data["messages"]] == [
        (1, None),
        (2, 1),
        (3, 2),
        (4, 3),
        (5, None),
        (6, 5),
    ]
    assert data["leaf"] == 6
    markdown = exported(client, chat, "md").content.decode()
    assert "Look again" in markdown and "Half" not in markdown

    client.post("/import", json.dumps(data), content_type="application/json")
    copy = Conversation.objects.exclude(pk=chat.pk).get()
    again = exported(client, copy, "json").json()
    assert [(m["seq"], m["parent"], m["content"]) for m in again["messages"]] == [
        (m["seq"], m["parent"], m["content"]) for m in data["messages"]
    ]
    assert again["leaf"] == 6 and copy.branched
    # The edited first message keeps its file, as its own copy.
    assert again["messages"][4]["attachments"] == data["messages"][0]["attachments"]


def test_a_version_2_file_whose_parent_is_not_earlier_is_refused(client, alice):
    client.force_login(alice)
    body = {
        "format": "noboxweb.conversation",
        "version": 2,
        "messages": [{"seq": 1, "parent": 2, "role": "user", "content": "hi"}],
    }
    response = client.post("/import", json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    assert "follows no earlier message" in response.json()["error"]["message"]
    assert not Conversation.objects.exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\xff not json", "The file is not JSON."),
        (b'["a list"]', "The file is not a noboxweb conversation export."),
        (b'{"format": "noboxweb.conversation", "version": 9}', "Only version 1 and 2 exports"),
        (
            b'{"format": "noboxweb.conversation", "version": 1, "messages": []}',
            "The file holds no messages.",
        ),
        (
            b'{"format": "noboxweb.conversation", "version": 1, "messages": [{"role": "system"}]}',
            "Message 1 is not a user or assistant message.",
        ),
        (
            b'{"format": "noboxweb.conversation", "version": 1, "messages": [{"role": "user",'
            b' "content": 7}]}',
            "content must be text.",
        ),
        (
            b'{"format": "noboxweb.conversation", "version": 1, "messages": [{"role": "user",'
            b' "attachments": [{"name": "x", "data": "AAEC"}]}]}',
            "A file of message 1 is not a file we accept.",
        ),
        (
            b'{"format": "noboxweb.conversation", "version": 1, "messages": [{"role": "user",'
            b' "attachments": [{"name": "empty.txt", "data": ""}]}]}',
            "A file of message 1 is not a file we accept.",
        ),
    ],
)
def test_a_bad_file_is_refused_and_nothing_is_created(client, alice, body, message):
    client.force_login(alice)
    response = client.post("/import", body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(message)
    assert Conversation.objects.count() == 0 and Attachment.objects.count() == 0


@pytest.mark.parametrize(("size", "accepted"), [(16, True), (17, False), (18, False)])
def test_an_imported_file_has_the_size_limit_of_a_sent_one(client, alice, settings, size, accepted):
    settings.MAX_ATTACHMENT_BYTES = 16
    file = {"name": "note.txt", "data": base64.b64encode(b"a" * size).decode()}
    message = {"role": "user", "content": "see", "attachments": [file]}
    body = {"format": "noboxweb.conversation", "version": 1, "messages": [message]}
    client.force_login(alice)

    response = client.post("/import", json.dumps(body), content_type="application/json")

    if accepted:
        assert response.status_code == 200
        assert Attachment.objects.get().size == size
    else:
        assert response.status_code == 400
        assert response.json()["error"]["message"] == "A file of message 1 is too large."
        assert Conversation.objects.count() == 0 and Attachment.objects.count() == 0


def test_an_import_over_the_size_limit_is_refused_unread(client, alice, settings):
    settings.MAX_IMPORT_BYTES = 1024 * 1024
    client.force_login(alice)
    response = client.post("/import", b"x" * (1024 * 1024 + 1), content_type="application/json")
    assert response.status_code == 413
    assert Conversation.objects.count() == 0


def test_someone_elses_conversation_cannot_be_exported(client, bob, chat):
    client.force_login(bob)
    assert client.get(f"/c/{chat.public_id}/export.json").status_code == 404
    assert client.get(f"/c/{chat.public_id}/export.md").status_code == 404


def test_import_needs_the_csrf_token(alice):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    response = strict.post("/import", b"{}", content_type="application/json")
    assert response.status_code == 403


def test_an_import_costs_the_same_statements_for_two_messages_as_for_six(client, alice):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(alice)
    file = {"name": "dot.png", "data": base64.b64encode(PNG).decode()}

    def statements(turns: int) -> int:
        messages: list[dict[str, Any]] = []
        for i in range(turns):
            messages.append({"role": "user", "content": f"see {i}", "attachments": [file]})
            messages.append({"role": "assistant", "content": f"dot {i}"})
        body = {"format": "noboxweb.conversation", "version": 1, "messages": messages}
        with CaptureQueriesContext(connection) as queries:
            response = client.post("/import", json.dumps(body), content_type="application/json")
        assert response.status_code == 200
        imported = Conversation.objects.get(public_id=response.json()["url"].split("/")[2])
        for question in imported.messages.filter(role="user"):
            assert question.attachments[0]["id"] == question.files.get().public_id
        return len(queries)

    # Before, each message was its own INSERT, and each with files two more statements.
    assert statements(1) == statements(3)
