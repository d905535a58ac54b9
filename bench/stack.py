"""The processes a benchmark run talks to, and the counters read around each measurement.

Everything listens on 127.0.0.1 and is stopped by the run that started it: the simulator, one or
two daphne processes, a fresh PostgreSQL database and a Redis key prefix of this run's own.

The app under test runs from `NOBOX_BENCH_ROOT` (default: this checkout), so the same suite can
measure another tree, e.g. a `git worktree` of an older commit; the simulator, the instrument,
always runs from this checkout.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

BENCH_ROOT = Path(__file__).resolve().parent.parent
PG_HOST, PG_PORT, REDIS_PORT = "127.0.0.1", 5432, 6379
PG_ADMIN_URL = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/postgres"
REDIS_URL = f"redis://127.0.0.1:{REDIS_PORT}/0"
SECRET_KEY = "benchmark-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
TOKEN_KEY = "vsTuC9ev89r7R6sVdEW4xjpQTt3yOBhC7WtGgofFudM="
TICKS = os.sysconf("SC_CLK_TCK")


def app_root() -> Path:
    return Path(os.environ.get("NOBOX_BENCH_ROOT") or BENCH_ROOT).resolve()


# --- processes --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}; see {log}")
        if reachable(port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after 30 s; see {log}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextmanager
def serve(argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> Iterator[tuple[str, int]]:
    """Run a server on a free port (appended to argv); yields (base URL, pid)."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*argv, str(port)], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_for_port(port, proc, log)
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        stop(proc)


@contextmanager
def simulator(log: Path) -> Iterator[tuple[str, int]]:
    env = {**os.environ, "PYTHONPATH": str(BENCH_ROOT)}
    argv = [sys.executable, "-m", "chat.nobox.simulator", "--first-byte-delay", "0", "--port"]
    with serve(argv, BENCH_ROOT, env, log) as (url, pid):
        yield f"{url}/_f_", pid


def app_env(var_dir: Path, sim_url: str, **overrides: str) -> dict[str, str]:
    """An app process's environment: production-like (DEBUG off), embedded defaults unless
    overridden. PYTHONPATH and the working directory pick the tree under test."""
    skip = {"DJANGO_SETTINGS_MODULE", "DATABASE_URL", "REDIS_URL", "CHANNEL_LAYER_PREFIX"}
    env = {key: value for key, value in os.environ.items() if key not in skip}
    env.update(
        DEBUG="0",  # DEBUG keeps every SQL query in memory: not what production runs
        SECRET_KEY=SECRET_KEY,
        NOBOX_TOKEN_KEYS=TOKEN_KEY,
        NOBOX_VAR_DIR=str(var_dir),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        # The relay alone: a title call after each first reply is not relay work (and the
        # baseline tree makes none).
        TITLE_MODEL="off",
        NOBOX_BASE_URL=sim_url,
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=str(app_root()),
    )
    env.update(overrides)
    return env


@contextmanager
def app_server(env: dict[str, str], log: Path) -> Iterator[tuple[str, int]]:
    # the tree's own launcher (daphne with the documented WebSocket limits) where it has one
    launcher = "noboxweb.serve" if (app_root() / "noboxweb" / "serve.py").exists() else "daphne"
    argv = [sys.executable, "-m", launcher, "noboxweb.asgi:application", "-b", "127.0.0.1", "-p"]
    with serve(argv, app_root(), env, log) as served:
        yield served


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=app_root(),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {args[0]} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


# One manage.py run for every user: each run starts Django. Unusable passwords, because hashing
# hundreds of real ones takes minutes; the sessions are made directly, as a login would.
USERS_SCRIPT = """
import json
from importlib import import_module
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from chat import tokens
import chat
Store = import_module(settings.SESSION_ENGINE).SessionStore
keys = []
for i in range({count}):
    user = get_user_model().objects.create_user(f"bench{{i:04d}}", "", None)
    tokens.store_token(user, {token!r})
    session = Store()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    keys.append(session.session_key)
print(json.dumps({{"chat": chat.__file__, "sessions": keys}}))
"""


def prepare(env: dict[str, str], users: int, token: str) -> tuple[str, list[str]]:
    """Migrate and create `users` people with a token and a session each.

    Returns where `chat` was imported from (the proof of which tree runs) and the session keys:
    one person per stream, as in a team, so nothing per-person fans out to every socket."""
    manage(env, "migrate", "--noinput")
    out = manage(env, "shell", "-c", USERS_SCRIPT.format(count=users, token=token))
    made = json.loads(out.strip().splitlines()[-1])
    return str(made["chat"]), list(made["sessions"])


# --- the two deployments ----------------------------------------------------------------------


@dataclass
class Deployment:
    name: str
    sender_url: str
    watcher_url: str | None  # process 2, production only
    app_pids: list[int]
    sessions: list[str]
    chat_file: str
    logs: list[Path]
    database: str | None = None  # PostgreSQL database name, for its session counter
    notes: list[str] = field(default_factory=list)


@contextmanager
def embedded(run_dir: Path, sim_url: str, users: int, token: str) -> Iterator[Deployment]:
    """One daphne, SQLite and the in-memory layer: `make run`."""
    var_dir = run_dir / "embedded"
    env = app_env(var_dir, sim_url)
    chat_file, sessions = prepare(env, users, token)
    log = run_dir / "embedded-daphne.log"
    with app_server(env, log) as (url, pid):
        yield Deployment("embedded", url, None, [pid], sessions, chat_file, [log])


@contextmanager
def production(run_dir: Path, sim_url: str, users: int, token: str) -> Iterator[Deployment]:
    """Two daphne processes on a fresh PostgreSQL database and Redis under a fresh prefix."""
    run = uuid.uuid4().hex[:10]
    database, prefix = f"noboxweb_bench_{run}", f"noboxweb-bench-{run}"
    with ExitStack() as cleanup:
        pg_admin(f'CREATE DATABASE "{database}"')
        cleanup.callback(pg_admin, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        cleanup.callback(delete_redis_keys, prefix)
        env = app_env(
            run_dir / "production",
            sim_url,
            DATABASE_URL=f"postgres://postgres@{PG_HOST}:{PG_PORT}/{database}",
            REDIS_URL=REDIS_URL,
            CHANNEL_LAYER_PREFIX=prefix,
        )
        chat_file, sessions = prepare(env, users, token)
        logs = [run_dir / "production-daphne-1.log", run_dir / "production-daphne-2.log"]
        url1, pid1 = cleanup.enter_context(app_server(env, logs[0]))
        url2, pid2 = cleanup.enter_context(app_server(env, logs[1]))
        yield Deployment(
            "production", url1, url2, [pid1, pid2], sessions, chat_file, logs, database
        )


# --- counters ---------------------------------------------------------------------------------


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes have used so far (/proc/<pid>/stat)."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            # the command name may hold spaces: fields are counted after its closing paren
            fields = stat.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / TICKS


def pg_admin(statement: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(statement.encode())


def pg_sessions(database: str) -> int:
    """Sessions ever opened on the database (PostgreSQL 14+), read from another database so
    that reading it opens none there."""
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        row = conn.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = %s", (database,)
        ).fetchone()
    return int(row[0]) if row else 0


def redis_calls() -> int:
    """Commands the Redis server has run since it started (all clients: see the report)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return sum(int(entry["calls"]) for entry in stats.values())


def delete_redis_keys(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def log_lines(logs: list[Path]) -> tuple[int, int]:
    """(errors, warnings) the app processes logged: tracebacks and ERROR lines, WARNING lines."""
    errors = warnings = 0
    for log in logs:
        if log.exists():
            for line in log.read_text(errors="replace").splitlines():
                errors += line.startswith("Traceback") or " ERROR " in line
                warnings += " WARNING " in line
    return errors, warnings
