"""Shared fixtures: the cast of users, the Nobox simulator as a real process, and service checks.

Alice owns things, Bob is a teammate who must not see Alice's things, Charlie has no token.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import ON_CI, ROOT, service_or_skip, simulator

__all__ = ["ON_CI", "ROOT", "service_or_skip"]


@pytest.fixture(scope="session")
def simulator_url() -> Iterator[str]:
    """The Nobox simulator as a real HTTP server, fast enough for tests."""
    with simulator(tokens_per_second=200) as url:
        yield url


@pytest.fixture
def nobox(settings: pytest.FixtureRequest, simulator_url: str) -> str:
    """Point the app at the simulator for this test."""
    settings.NOBOX_BASE_URL = simulator_url  # type: ignore[attr-defined]
    return simulator_url


@pytest.fixture
def alice(django_user_model):  # type: ignore[no-untyped-def]
    return django_user_model.objects.create_user("alice", "alice@example.com", "alice-password")


@pytest.fixture
def bob(django_user_model):  # type: ignore[no-untyped-def]
    return django_user_model.objects.create_user("bob", "bob@example.com", "bob-password")


@pytest.fixture
def charlie(django_user_model):  # type: ignore[no-untyped-def]
    return django_user_model.objects.create_user("charlie", "charlie@example.com", "charlie-pw")


ALICE_TOKEN = "sk-alice-token-0001"
BOB_TOKEN = "sk-bob-token-0002"


@pytest.fixture
def alice_token(alice):  # type: ignore[no-untyped-def]
    from chat import tokens

    tokens.store_token(alice, ALICE_TOKEN)
    return ALICE_TOKEN


@pytest.fixture
def bob_token(bob):  # type: ignore[no-untyped-def]
    from chat import tokens

    tokens.store_token(bob, BOB_TOKEN)
    return BOB_TOKEN


def stored_token(user) -> str | None:  # type: ignore[no-untyped-def]
    """The user's own token as stored, decrypted: what the tests check was saved."""
    from chat import tokens
    from chat.models import NoboxToken

    record = NoboxToken.objects.filter(user=user).first()
    return tokens.decrypt(record.ciphertext) if record else None
