"""Attachments as files: stored apart, served to the owner only, gone with their message, and
moved out of message rows by migration 0006 (and back)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from django.core.files.storage import default_storage
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from chat import tokens
from chat.incoming_frames import parse_send
from chat.models import Attachment, Conversation, Message, User
from chat.replies.turns import Refused, store_turn
from tests.conftest import ALICE_TOKEN

pytestmark = pytest.mark.django_db(transaction=True)

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(40))
TEXT = b"a <script>alert(1)</script> note"


def send(client_id: str, conversation: str | None, files: dict[str, bytes]) -> Any:
    parts = [
        {"type": "file", "file": {"name": name, "data": base64.b64encode(data).decode()}}
        for name, data in files.items()
    ]
    frame = {"client_id": client_id, "conversation": conversation, "text": "see", "model": "m/x"}
    return parse_send(frame | {"attachments": parts})


@pytest.fixture
def sent(alice: User) -> list[Attachment]:
    tokens.store_token(alice, ALICE_TOKEN)
    store_turn(alice, send("c1", None, {"pic.png": PNG, "note.txt": TEXT}))
    return list(Attachment.objects.order_by("position"))


def stored_names() -> set[str]:
    return {f"attachments/{name}" for name in default_storage.listdir("attachments")[1]}


def test_the_owner_gets_each_file_as_what_its_bytes_are(client, alice, sent):
    client.force_login(alice)
    image, note = (client.get(f"/files/{f.public_id}") for f in sent)

    assert b"".join(image.streaming_content) == PNG
    assert image["Content-Type"] == "image/png"
    assert image["Content-Disposition"].startswith("inline")
    # Text is never a page: a download, unsniffed, in a sandbox even if opened.
    assert b"".join(note.streaming_content) == TEXT
    assert note["Content-Type"] == "text/plain; charset=utf-8"
    assert note["Content-Disposition"].startswith("attachment")
    for response in (image, note):
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Content-Security-Policy"] == "default-src 'none'; sandbox"


def test_someone_elses_file_is_not_found(client, bob, sent):
    client.force_login(bob)
    assert client.get(f"/files/{sent[0].public_id}").status_code == 404
    assert client.get("/files/" + "x" * 40).status_code == 404


def test_deleting_a_conversation_deletes_its_files(sent):
    assert {f.stored_name for f in sent} <= stored_names()

    Conversation.objects.all().delete()

    assert not ({f.stored_name for f in sent} & stored_names())


def test_a_refused_send_leaves_no_file_behind(alice, sent):
    chat = Message.objects.get(client_id="c1").conversation.public_id
    before = stored_names()

    with pytest.raises(Refused) as refused:  # its first reply still runs
        store_turn(alice, send("c2", chat, {"more.png": PNG}))

    assert refused.value.code == "busy"
    assert stored_names() == before
    assert Attachment.objects.count() == 2


def test_a_resent_frame_stores_its_files_once(alice, sent):
    before = stored_names()
    turn = store_turn(alice, send("c1", None, {"pic.png": PNG, "note.txt": TEXT}))
    assert turn.duplicate
    assert stored_names() == before


# --- the migration ---------------------------------------------------------------------------

INLINE = [
    {
        "type": "image_url",
        "image_url": {"url": f"data:image/png;base64,{base64.b64encode(PNG).decode()}"},
    },
    {
        "type": "input_audio",
        "input_audio": {
            "data": base64.b64encode(b"RIFF\0\0\0\0WAVEdata").decode(),
            "format": "wav",
        },
    },
]


def migrate(target: str) -> Any:
    executor = MigrationExecutor(connection)
    executor.migrate([("chat", target)])
    executor.loader.build_graph()
    return executor.loader.project_state([("chat", target)]).apps


def test_the_migration_moves_inline_attachments_out_and_back(alice):
    old = migrate("0003_audit_and_admin")
    OldConversation, OldMessage = (
        old.get_model("chat", "Conversation"),
        old.get_model("chat", "Message"),
    )
    chat = OldConversation.objects.create(owner_id=alice.pk, title="old")
    OldMessage.objects.create(
        conversation=chat, seq=1, role="user", content="hi", attachments=INLINE
    )

    new = migrate("0006_attachments")
    message = new.get_model("chat", "Message").objects.get()
    files = list(new.get_model("chat", "Attachment").objects.order_by("position"))
    assert [(f.kind, f.content_type, f.audio_format) for f in files] == [
        ("image", "image/png", ""),
        ("audio", "audio/wav", "wav"),
    ]
    assert [r["id"] for r in message.attachments] == [f.public_id for f in files]
    assert "base64" not in str(message.attachments)
    assert default_storage.open(files[0].stored_name).read() == PNG

    back = migrate("0003_audit_and_admin")
    assert back.get_model("chat", "Message").objects.get().attachments == INLINE
    assert not ({f.stored_name for f in files} & stored_names())
    # Leave the schema as the other tests expect it: every migration applied.
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
