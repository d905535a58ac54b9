"""Nobox tokens at rest: encrypted, authenticated, rotatable, never readable by accident."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.db import connection

from chat import tokens
from chat.models import NoboxToken
from tests.conftest import stored_token

pytestmark = pytest.mark.django_db

TOKEN = "sk-live-abcdef-123456"


def raw_column(user_id: int) -> bytes:
    with connection.cursor() as cursor:
        cursor.execute("SELECT ciphertext FROM chat_noboxtoken WHERE user_id = %s", [user_id])
        (value,) = cursor.fetchone()
    return bytes(value)


def test_the_database_column_never_holds_the_token(alice):
    tokens.store_token(alice, TOKEN)
    raw = raw_column(alice.pk)
    assert TOKEN.encode() not in raw
    assert TOKEN[:8].encode() not in raw
    assert stored_token(alice) == TOKEN


def test_the_same_token_saved_twice_gives_different_ciphertexts(alice, bob):
    tokens.store_token(alice, TOKEN)
    tokens.store_token(bob, TOKEN)
    assert raw_column(alice.pk) != raw_column(bob.pk)


def test_only_the_last_four_characters_are_kept_readable(alice):
    record = tokens.store_token(alice, TOKEN)
    assert record.last4 == "3456"
    assert TOKEN not in str(record)


def test_replacing_a_token_keeps_one_record(alice):
    tokens.store_token(alice, TOKEN)
    tokens.store_token(alice, "sk-another-token-9999")
    assert NoboxToken.objects.filter(user=alice).count() == 1
    assert stored_token(alice) == "sk-another-token-9999"


def test_a_token_written_under_an_old_key_reads_after_rotation(alice, settings):
    old_key = settings.NOBOX_TOKEN_KEYS[0]
    tokens.store_token(alice, TOKEN)
    settings.NOBOX_TOKEN_KEYS = [Fernet.generate_key().decode(), old_key]
    assert stored_token(alice) == TOKEN


def test_a_tampered_ciphertext_is_unreadable_not_a_crash(alice):
    tokens.store_token(alice, TOKEN)
    record = NoboxToken.objects.get(user=alice)
    forged = bytearray(bytes(record.ciphertext))
    forged[len(forged) // 2] ^= 0x01
    NoboxToken.objects.filter(pk=record.pk).update(ciphertext=bytes(forged))
    with pytest.raises(tokens.TokenUnreadable):
        stored_token(alice)


def test_a_token_under_a_lost_key_is_unreadable(alice, settings):
    tokens.store_token(alice, TOKEN)
    settings.NOBOX_TOKEN_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(tokens.TokenUnreadable) as caught:
        stored_token(alice)
    assert TOKEN not in str(caught.value)


def test_no_token_is_none(alice):
    assert stored_token(alice) is None
