"""Shared fixtures: the cast of users, the Nobox simulator as a real process, and service checks.

Alice owns things, Bob is a teammate who must not see Alice's things, Charlie has no token.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from chat.translations import compile_stale
from tests.servers import ON_CI, ROOT, service_or_skip, simulator

if TYPE_CHECKING:
    from pytest_django.fixtures import Settings

    from chat.models import User

__all__ = ["ON_CI", "ROOT", "service_or_skip"]


def pytest_sessionstart(session: pytest.Session) -> None:
    """Tests read the compiled catalogues, as the app does: build any .mo missing or older than
    its .po (what `make setup` does), so a test run never checks stale translations."""
    compile_stale()


@pytest.fixture(scope="session")
def simulator_url() -> Iterator[str]:
    """The Nobox simulator as a real HTTP server, fast enough for tests."""
    with simulator(tokens_per_second=200) as url:
        yield url


@pytest.fixture
def nobox(settings: Settings, simulator_url: str) -> str:
    """Point the app at the simulator for this test."""
    settings.NOBOX_BASE_URL = simulator_url
    return simulator_url


@pytest.fixture
def alice(django_user_model: type[User]) -> User:
    return django_user_model.objects.create_user("alice", "alice@example.com", "alice-password")


@pytest.fixture
def bob(django_user_model: type[User]) -> User:
    return django_user_model.objects.create_user("bob", "bob@example.com", "bob-password")


@pytest.fixture
def charlie(django_user_model: type[User]) -> User:
    return django_user_model.objects.create_user("charlie", "charlie@example.com", "charlie-pw")


ALICE_TOKEN = "sk-alice-token-0001"
BOB_TOKEN = "sk-bob-token-0002"


@pytest.fixture
def alice_token(alice: User) -> str:
    from chat import tokens

    tokens.store_token(alice, ALICE_TOKEN)
    return ALICE_TOKEN


@pytest.fixture
def bob_token(bob: User) -> str:
    from chat import tokens

    tokens.store_token(bob, BOB_TOKEN)
    return BOB_TOKEN


def stored_token(user: User) -> str | None:
    """The user's own token as stored, decrypted: what the tests check was saved."""
    from chat import tokens
    from chat.models import NoboxToken

    record = NoboxToken.objects.filter(user=user).first()
    return tokens.decrypt(record.ciphertext) if record else None


@pytest.fixture(autouse=True)
def _database_reachable(monkeypatch: pytest.MonkeyPatch) -> None:
    """chat.database remembers, process-wide, when a call last failed or was slow (the sweep
    waits after one): each test starts from a database that has been fine all along."""
    from chat import database

    monkeypatch.setattr(database, "_last_failure", None)
