"""Pages and JSON endpoints as the owner, as another user and as nobody."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from chat.conversations import purge_deleted
from chat.models import Conversation, Message, NoboxToken
from tests.conftest import ALICE_TOKEN

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_chat(alice):
    conversation = Conversation.objects.create(owner=alice, title="Alice's plans", next_seq=3)
    Message.objects.create(conversation=conversation, seq=1, role="user", content="secret plan")
    Message.objects.create(
        conversation=conversation, seq=2, role="assistant", content="**bold** answer"
    )
    return conversation


@pytest.fixture
def as_alice(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def as_bob(client, bob):
    client.force_login(bob)
    return client


def test_anonymous_visitors_are_sent_to_sign_in(client, alice_chat):
    for url in ["/", f"/c/{alice_chat.public_id}/", "/settings/"]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")


def test_the_chat_page_lists_only_my_conversations(as_alice, alice_chat, bob):
    Conversation.objects.create(owner=bob, title="Bob's thing")
    page = as_alice.get("/").content.decode()
    assert "Alice&#x27;s plans" in page or "Alice's plans" in page
    assert "Bob&#x27;s thing" not in page and "Bob's thing" not in page


def test_the_owner_sees_the_conversation_with_its_messages(as_alice, alice_chat):
    response = as_alice.get(f"/c/{alice_chat.public_id}/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "secret plan" in body
    assert 'id="page-data"' in body


def test_it_rejects_other_users(as_bob, alice_chat):
    assert as_bob.get(f"/c/{alice_chat.public_id}/").status_code == 404
    assert as_bob.post(f"/c/{alice_chat.public_id}/rename", {"title": "mine"}).status_code == 404
    assert as_bob.post(f"/c/{alice_chat.public_id}/delete").status_code == 404
    alice_chat.refresh_from_db()
    assert alice_chat.title == "Alice's plans"


def test_unknown_conversations_are_404(as_alice):
    assert as_alice.get("/c/does-not-exist/").status_code == 404


def test_the_owner_can_rename_and_delete(as_alice, alice_chat):
    as_alice.post(f"/c/{alice_chat.public_id}/rename", {"title": "Renamed"})
    alice_chat.refresh_from_db()
    assert alice_chat.title == "Renamed"
    response = as_alice.post(f"/c/{alice_chat.public_id}/delete")
    assert response.status_code == 302
    # Deleted at once for the user; purged for good once the undo window has passed.
    assert not Conversation.objects.live().filter(pk=alice_chat.pk).exists()
    assert as_alice.get(f"/c/{alice_chat.public_id}/").status_code == 404
    Conversation.objects.filter(pk=alice_chat.pk).update(
        deleted_at=timezone.now() - timedelta(minutes=1)
    )
    assert purge_deleted() == 1
    assert not Conversation.objects.filter(pk=alice_chat.pk).exists()
    assert not Message.objects.filter(conversation_id=alice_chat.pk).exists()


def test_changing_things_needs_post(as_alice, alice_chat):
    assert as_alice.get(f"/c/{alice_chat.public_id}/delete").status_code == 405
    assert Conversation.objects.filter(pk=alice_chat.pk).exists()


def test_forms_need_a_csrf_token(alice, alice_chat):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post(f"/c/{alice_chat.public_id}/delete").status_code == 403
    assert client.post("/settings/", {"token": "sk-abcdefgh"}).status_code == 403
    assert Conversation.objects.filter(pk=alice_chat.pk).exists()


def test_pages_carry_a_strict_content_security_policy(as_alice):
    policy = as_alice.get("/")["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "frame-ancestors 'none'" in policy


def test_models_need_a_signed_in_user(client):
    response = client.get("/api/models")
    assert response.status_code == 401


def test_models_without_a_token_say_what_to_do(as_alice):
    response = as_alice.get("/api/models")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "no_token"


def test_models_come_with_prices_and_never_the_token(as_alice, alice_token, nobox):
    response = as_alice.get("/api/models")
    assert response.status_code == 200
    models = {m["id"]: m for m in response.json()["models"]}
    assert models["openai/gpt-4o"]["pricing"] == {"prompt": "0.0000025", "completion": "0.00001"}
    assert models["openai/gpt-4o"]["input_per_million"] == "2.50"
    assert models["openai/gpt-4o"]["output_per_million"] == "10"
    assert models["sim/echo"]["free"] is True
    assert ALICE_TOKEN not in response.content.decode()


def test_models_say_provider_prices_per_million_and_context_for_the_picker(
    as_alice, alice_token, nobox
):
    models = {m["id"]: m for m in as_alice.get("/api/models").json()["models"]}
    gpt, echo = models["openai/gpt-4o"], models["sim/echo"]
    assert gpt["provider"] == "OpenAI"
    assert (gpt["input_per_million"], gpt["output_per_million"]) == ("2.50", "10")
    assert (gpt["free"], gpt["price_unknown"], gpt["context_length"]) == (False, False, 128_000)
    assert models["meta/llama-3.3-70b"]["context_length"] == 131_072
    assert (echo["provider"], echo["free"], echo["price_unknown"]) == ("Simulator", True, False)
    assert (echo["input_per_million"], echo["output_per_million"]) == ("0", "0")


def test_models_without_a_price_or_context_say_so(as_alice, alice, nobox):
    from chat import tokens
    from chat.nobox.simulator import CATALOGUE_TOKEN_PREFIX

    tokens.store_token(alice, f"{CATALOGUE_TOKEN_PREFIX}-alice-0001")
    models = {m["id"]: m for m in as_alice.get("/api/models").json()["models"]}
    assert len(models) > 300
    unpriced = models["nvidia/catalogue-05"]  # listed without pricing and context length
    assert unpriced["price_unknown"] is True and unpriced["free"] is False
    assert unpriced["input_per_million"] is None and unpriced["output_per_million"] is None
    assert unpriced["context_length"] is None
    assert unpriced["provider"] == "NVIDIA"
    assert models["x-ai/catalogue-01"]["provider"] == "xAI"


def test_a_nobox_failure_on_models_is_a_clear_error(as_alice, alice, nobox):
    from chat import tokens

    tokens.store_token(alice, "invalid-but-stored")
    response = as_alice.get("/api/models")
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "invalid_token"
    assert "Replace it in Settings" in response.json()["error"]["message"]


def test_saving_a_token_verifies_and_encrypts_it(as_alice, alice, nobox):
    token = "sk-fresh-token-9876"
    response = as_alice.post("/settings/", {"action": "save", "token": token}, follow=True)
    assert response.status_code == 200
    page = response.content.decode()
    assert "…9876" in page
    assert token not in page
    record = NoboxToken.objects.get(user=alice)
    assert token.encode() not in bytes(record.ciphertext)
    assert record.last_verified_at is not None


def test_a_rejected_token_is_not_saved(as_alice, alice, nobox):
    response = as_alice.post("/settings/", {"action": "save", "token": "invalid-token-123"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "Nobox rejected this token (401)" in page
    assert "nothing was saved" in page
    assert "invalid-token-123" not in page
    assert not NoboxToken.objects.filter(user=alice).exists()


def test_an_unreachable_nobox_saves_nothing(as_alice, alice, settings):
    settings.NOBOX_BASE_URL = "http://127.0.0.1:9/_f_"
    settings.NOBOX_RETRY_ATTEMPTS = 1
    response = as_alice.post("/settings/", {"action": "save", "token": "sk-unverifiable"})
    assert "Could not verify the token" in response.content.decode()
    assert not NoboxToken.objects.filter(user=alice).exists()


def test_a_malformed_token_is_refused_before_any_call(as_alice, alice):
    response = as_alice.post("/settings/", {"action": "save", "token": "has space in it"})
    assert "does not look like a Nobox token" in response.content.decode()
    assert not NoboxToken.objects.filter(user=alice).exists()


def test_a_token_can_be_removed(as_alice, alice, alice_token):
    as_alice.post("/settings/", {"action": "remove"})
    assert not NoboxToken.objects.filter(user=alice).exists()


def test_the_settings_page_never_shows_the_token(as_alice, alice_token):
    page = as_alice.get("/settings/").content.decode()
    assert alice_token not in page
    assert "…" + alice_token[-4:] in page


def test_signing_in_and_out(client, alice):
    assert client.get("/accounts/login/").status_code == 200
    response = client.post("/accounts/login/", {"username": "alice", "password": "alice-password"})
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    client.post("/accounts/logout/")
    assert client.get("/").status_code == 302


def test_a_wrong_password_does_not_sign_in(client, alice):
    response = client.post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert "didn't match" in response.content.decode()
    assert client.get("/").status_code == 302


def test_there_is_no_open_sign_up(client):
    assert client.get("/accounts/signup/").status_code == 404
    assert client.get("/accounts/register/").status_code == 404


def test_a_user_changes_their_password(as_alice, alice):
    response = as_alice.post(
        "/accounts/password_change/",
        {
            "old_password": "alice-password",
            "new_password1": "Much-better-pass-2026",
            "new_password2": "Much-better-pass-2026",
        },
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password("Much-better-pass-2026")


def test_the_page_takes_its_limits_from_the_settings(as_alice, settings):
    settings.MAX_ATTACHMENTS = 3
    settings.MAX_MESSAGE_CHARS = 1234
    settings.MAX_OUTPUT_TOKENS = 777
    response = as_alice.get("/")
    found = re.search(r'id="page-data"[^>]*>(.*?)</script>', response.text, re.S)
    assert found, "no page data in the page"
    data = json.loads(found[1])
    assert data["limits"]["max_attachments"] == 3
    assert data["limits"]["max_attachment_bytes"] == settings.MAX_ATTACHMENT_BYTES
    assert 'id="composer" rows="1" maxlength="1234"' in response.text
    assert 'id="max-tokens" min="1" max="777"' in response.text


# --- long conversations ----------------------------------------------------------------------


@pytest.fixture
def long_chat(alice):
    """1,000 messages, and 150 other conversations in the sidebar."""
    Conversation.objects.bulk_create(
        [Conversation(owner=alice, title=f"chat {i}") for i in range(150)]
    )
    conversation = Conversation.objects.create(owner=alice, title="long", next_seq=1001)
    Message.objects.bulk_create(
        Message(conversation=conversation, seq=seq, role="user", content=f"message {seq}")
        for seq in range(1, 1001)
    )
    return conversation


def page_data(response) -> dict[str, Any]:
    found = re.search(r'id="page-data"[^>]*>(.*?)</script>', response.text, re.S)
    assert found, "no page data in the page"
    return dict(json.loads(found[1]))


def test_a_long_conversation_page_carries_its_latest_messages_in_few_queries(
    as_alice, long_chat, django_assert_max_num_queries
):
    with django_assert_max_num_queries(6):
        response = as_alice.get(f"/c/{long_chat.public_id}/")

    data = page_data(response)
    assert [m["seq"] for m in data["messages"]] == list(range(961, 1001))
    assert data["older_messages"] is True
    assert response.text.count('<li class="conversation-row" data-id=') == 151


def test_older_messages_come_a_page_at_a_time(as_alice, long_chat):
    url = page_data(as_alice.get(f"/c/{long_chat.public_id}/"))["messages_url"]
    seen: list[int] = []
    before = 961
    while True:
        answer = as_alice.get(url, {"before": before}).json()
        assert len(answer["messages"]) == 100 or not answer["older"]
        seen = [m["seq"] for m in answer["messages"]] + seen
        if not answer["older"]:
            break
        before = answer["messages"][0]["seq"]
    assert seen == list(range(1, 961))


def test_older_messages_are_the_owners_alone_and_need_a_seq(as_alice, bob, long_chat):
    url = f"/c/{long_chat.public_id}/messages"
    assert as_alice.get(url, {"before": "x"}).status_code == 400
    stranger = Client()
    stranger.force_login(bob)
    assert stranger.get(url, {"before": 5}).status_code == 404


# --- first run ---------------------------------------------------------------------------------


def test_without_a_token_the_empty_chat_asks_for_one(as_alice, alice):
    page = as_alice.get("/").content.decode()
    assert 'class="onboarding"' in page and 'name="next" value="/"' in page
    tokens_page = as_alice.get(f"/c/{Conversation.objects.create(owner=alice).public_id}/")
    assert 'class="onboarding"' not in tokens_page.content.decode()


def test_with_a_token_the_empty_chat_just_invites(as_alice, alice_token):
    assert 'class="onboarding"' not in as_alice.get("/").content.decode()


@pytest.mark.parametrize(
    ("next_page", "landing"),
    [("/", "/"), ("https://evil.example/", "/settings/"), ("//evil.example/", "/settings/")],
)
def test_saving_from_the_first_run_card_goes_back_to_the_chat_only(
    as_alice, nobox, next_page, landing
):
    data = {"action": "save", "token": "sk-first-run-1234", "next": next_page}
    response = as_alice.post("/settings/", data)
    assert (response.status_code, response["Location"]) == (302, landing)
