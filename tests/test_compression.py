"""Pages and JSON travel gzipped to browsers that accept it; files do not."""

from __future__ import annotations

import gzip
import json

import pytest

from chat.models import Attachment, Conversation, Message, User
from chat.replies.turns import store_turn
from tests.test_attachments import PNG, send

pytestmark = pytest.mark.django_db

GZIP = {"HTTP_ACCEPT_ENCODING": "gzip, deflate, br"}


@pytest.fixture
def long_chat(alice: User) -> Conversation:
    chat = Conversation.objects.create(owner=alice, title="long", next_seq=41)
    Message.objects.bulk_create(
        Message(conversation=chat, seq=seq, role="user", content=f"message {seq} " * 20)
        for seq in range(1, 41)
    )
    return chat


def test_a_chat_page_is_gzipped_and_says_so(client, alice, long_chat):
    client.force_login(alice)
    response = client.get(f"/c/{long_chat.public_id}/", **GZIP)

    assert response["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in response["Vary"]
    page = gzip.decompress(response.content).decode()
    assert "message 40 message 40" in page
    assert len(response.content) < len(page.encode()) / 3


def test_a_browser_that_does_not_accept_gzip_gets_the_page_as_is(client, alice, long_chat):
    client.force_login(alice)
    response = client.get(f"/c/{long_chat.public_id}/")

    assert not response.has_header("Content-Encoding")
    assert "message 40 message 40" in response.content.decode()


def test_json_is_gzipped(client, alice, long_chat):
    client.force_login(alice)
    response = client.get(f"/c/{long_chat.public_id}/messages?before=41", **GZIP)

    assert response["Content-Encoding"] == "gzip"
    assert len(json.loads(gzip.decompress(response.content))["messages"]) == 40


@pytest.mark.django_db(transaction=True)
def test_files_are_served_as_they_are(client, alice, alice_token):
    store_turn(alice, send("c1", None, {"pic.png": PNG}))
    [image] = Attachment.objects.all()
    client.force_login(alice)
    response = client.get(f"/files/{image.public_id}", **GZIP)

    assert not response.has_header("Content-Encoding")
    assert b"".join(response.streaming_content) == PNG
