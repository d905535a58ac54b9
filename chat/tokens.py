"""Nobox tokens at rest: authenticated encryption under rotatable keys (MultiFernet).

The first key in NOBOX_TOKEN_KEYS encrypts; every key decrypts, so keys can be rotated without
making any stored token unreadable. Tokens are never logged and never leave the server.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.utils import timezone

from chat.models import NoboxToken, User


class TokenUnreadable(Exception):
    """The stored ciphertext cannot be decrypted (tampered, or encrypted under a lost key)."""


def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in settings.NOBOX_TOKEN_KEYS])


def encrypt(token: str) -> bytes:
    return _fernet().encrypt(token.encode())


def decrypt(ciphertext: bytes | memoryview) -> str:
    try:
        return _fernet().decrypt(bytes(ciphertext)).decode()
    except InvalidToken as exc:
        raise TokenUnreadable("stored Nobox token cannot be decrypted; please re-enter it") from exc


def store_token(user: User, token: str) -> NoboxToken:
    """Save (or replace) the user's token. The caller has verified it with Nobox already."""
    now = timezone.now()
    record, _ = NoboxToken.objects.update_or_create(
        user=user,
        defaults={
            "ciphertext": encrypt(token),
            "last4": token[-4:],
            "updated_at": now,
            "last_verified_at": now,
        },
        create_defaults={
            "ciphertext": encrypt(token),
            "last4": token[-4:],
            "created_at": now,
            "updated_at": now,
            "last_verified_at": now,
        },
    )
    return record


def remove_token(user: User) -> bool:
    deleted, _ = NoboxToken.objects.filter(user=user).delete()
    return deleted > 0


def token_for(user: User) -> str | None:
    """The user's token in clear, for an upstream call only. None when they have none."""
    record = NoboxToken.objects.filter(user=user).only("ciphertext").first()
    if record is None:
        return None
    return decrypt(record.ciphertext)
