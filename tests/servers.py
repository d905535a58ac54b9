"""Real processes for end-to-end tests: the app under daphne, the Nobox simulator, manage.py.

Each app process gets its own environment (database, Redis, upstream), exactly as an
operator would configure it; nothing is shared with the test process but the database itself.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
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


TEST_SECRET_KEY = "end-to-end-test-secret-key-0123456789-abcdefghijklmnop"
TEST_TOKEN_KEY = "vsTuC9ev89r7R6sVdEW4xjpQTt3yOBhC7WtGgofFudM="


def app_env(var_dir: Path, **overrides: str) -> dict[str, str]:
    """Environment for an app process: embedded defaults under `var_dir` unless overridden."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL"}
    }
    env.update(
        {
            "DEBUG": "1",  # serves static files from the finders; no collectstatic needed
            "SECRET_KEY": TEST_SECRET_KEY,
            "NOBOX_TOKEN_KEYS": TEST_TOKEN_KEY,
            "NOBOX_VAR_DIR": str(var_dir),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "NOBOX_BASE_URL": "http://127.0.0.1:9/_f_",
            "PYTHONUNBUFFERED": "1",
            # No title calls after first replies: tests count upstream calls.
            "TITLE_MODEL": "off",
        }
    )
    env.update(overrides)
    return env


def manage(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def create_user(
    env: dict[str, str], username: str, password: str, token: str | None = None
) -> None:
    code = f"from chat.models import User; User.objects.create_user({username!r}, '', {password!r})"
    manage(env, "shell", "-c", code)
    if token is not None:
        manage(env, "set_nobox_token", username, stdin=token + "\n")


@contextmanager
def simulator(
    tokens_per_second: float = 50, reply_tokens: int = 120, log_path: Path | None = None
) -> Iterator[str]:
    """The Nobox simulator as a real process on a free port; yields its base URL."""
    port = free_port()
    argv = ["-m", "chat.nobox.simulator", "--port", str(port)]
    argv += ["--tokens-per-second", str(tokens_per_second), "--reply-tokens", str(reply_tokens)]
    with _listening(argv, port, log_path=log_path):
        yield f"http://127.0.0.1:{port}/_f_"


@contextmanager
def app_server(
    env: dict[str, str], log_path: Path | None = None, command: Sequence[str] = ("noboxweb.serve",)
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Serve the app with `python -m <command>` on a free port; yields (base URL, process). The
    default is daphne with the WebSocket limits of settings, as `make run` serves it."""
    port = free_port()
    argv = ["-m", *command, "-b", "127.0.0.1", "-p", str(port), "noboxweb.asgi:application"]
    with _listening(argv, port, env, log_path, timeout=30) as proc:
        yield f"http://127.0.0.1:{port}", proc


@contextmanager
def _listening(
    argv: list[str],
    port: int,
    env: dict[str, str] | None = None,
    log_path: Path | None = None,
    timeout: float = 20.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """`python argv` from the checkout, its output in `log_path` (or dropped), once it listens
    on `port`; stopped on the way out."""
    with open(log_path or os.devnull, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, *argv], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_for_port(port, timeout=timeout, proc=proc)
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def login(base_url: str, username: str, password: str) -> httpx.Cookies:
    """Sign in through the real login form; returns the session (and CSRF) cookies."""
    with httpx.Client(base_url=base_url, follow_redirects=False, timeout=30) as client:
        page = client.get("/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token, "login page has no CSRF token"
        response = client.post(
            "/accounts/login/",
            data={
                "username": username,
                "password": password,
                "csrfmiddlewaretoken": token.group(1),
            },
            headers={"Referer": f"{base_url}/accounts/login/"},
        )
        assert response.status_code == 302, f"login failed: {response.status_code}"
        return client.cookies
