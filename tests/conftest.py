"""Shared fixtures: the cast of users, the Nobox simulator as a real process, and service checks.

Alice owns things, Bob is a teammate who must not see Alice's things, Charlie has no token.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ON_CI = os.environ.get("CI", "").lower() == "true"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, timeout: float = 20.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def service_or_skip(name: str, port: int) -> None:
    """Skip where a service is absent (a laptop); on CI its absence is a failure."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return
    except OSError:
        if ON_CI:
            pytest.fail(f"{name} is not reachable on 127.0.0.1:{port} (required on CI)")
        pytest.skip(f"{name} is not reachable on 127.0.0.1:{port}")


@pytest.fixture(scope="session")
def simulator_url() -> Iterator[str]:
    """The Nobox simulator as a real HTTP server, fast enough for tests."""
    port = free_port()
    env = {**os.environ, "NOBOX_SIM_TOKENS_PER_SECOND": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "chat.nobox.simulator", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc=proc)
        yield f"http://127.0.0.1:{port}/_f_"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


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
