"""The production-shaped stack for end-to-end tests: two daphne processes sharing PostgreSQL and
Redis, the Nobox simulator, a signed-in user, and a WebSocket client that keeps what a browser
would show.

Everything is real: the simulator and the app processes are subprocesses, the database is a
fresh PostgreSQL database, Redis carries the relay between processes (under a prefix of its
own), sign-in goes through the login form, and the clients speak docs/protocol.md.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from chat.nobox.simulator import find_model, reply_text
from tests.protocol import Page, send_frame
from tests.servers import app_env, app_server, login, manage, service_or_skip, simulator

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"

# sim/long answers REPLY_TOKENS * 10 pieces: 600 pieces at 120 a second is a five-second reply,
# long enough to join, leave, stop and kill in the middle of it.
TOKENS_PER_SECOND = 120
REPLY_TOKENS = 60
CHECKPOINT_INTERVAL = 0.5
ORPHAN_AFTER = 5.0  # ten missed checkpoints: a loaded CI machine must not look dead
SWEEP_INTERVAL = 1.0

PROMPT = "Tell me the long one, please"
# The simulator is deterministic: this is the whole reply every sim/long turn below must produce.
FULL_REPLY = reply_text(find_model("sim/long"), [{"role": "user", "content": PROMPT}], REPLY_TOKENS)

# Bounds on waits, so a bug fails a test instead of hanging it. Generous: they are not speed
# assertions, only "this never happened".
FRAME_TIMEOUT = 15.0
REPLY_TIMEOUT = 30.0
# The sweep needs the heartbeat to age past ORPHAN_AFTER, then one sweep; plus a wide margin.
SWEEP_TIMEOUT = ORPHAN_AFTER + SWEEP_INTERVAL + 15.0


# --- the stack ---------------------------------------------------------------------------------


@dataclass
class Stack:
    database_url: str
    url1: str  # process 1: generates the replies
    url2: str  # process 2: the other sockets
    env: dict[str, str]  # what both run with, for another process of the same stack
    password: str  # alice's
    sim_url: str
    cookies1: httpx.Cookies  # a session signed in through process 1 ("browser A")
    cookies2: httpx.Cookies  # another session of the same user, through process 2 ("browser B")
    logs: list[Path]


@contextmanager
def running_stack(
    tmp: Path,
    redis_url: str = REDIS_URL,
    database_host: str = "127.0.0.1:5432",
    **extra_env: str,
) -> Iterator[Stack]:
    """The stack; `redis_url` and `database_host` let a fault test put its own Redis or a
    cuttable proxy in front of PostgreSQL between the app processes and the real servers;
    `extra_env` sets more of the app's settings (limits, say)."""
    service_or_skip("PostgreSQL", 5432)
    service_or_skip("Redis", 6379)
    run = uuid.uuid4().hex[:12]
    db_name = f"noboxweb_test_{run}"
    prefix = f"noboxweb-test-{run}"
    database_url = f"postgres://postgres@127.0.0.1:5432/{db_name}"
    with ExitStack() as cleanup:
        _create_database(db_name)
        cleanup.callback(_drop_database, db_name)
        cleanup.callback(_delete_redis_keys, prefix)
        sim_url = cleanup.enter_context(
            simulator(tokens_per_second=TOKENS_PER_SECOND, reply_tokens=REPLY_TOKENS)
        )
        env = app_env(
            tmp,
            DATABASE_URL=f"postgres://postgres@{database_host}/{db_name}",
            REDIS_URL=redis_url,
            REDIS_PREFIX=prefix,
            NOBOX_BASE_URL=sim_url,
            REPLY_CHECKPOINT_INTERVAL=str(CHECKPOINT_INTERVAL),
            REPLY_ORPHAN_AFTER=str(ORPHAN_AFTER),
            REPLY_SWEEP_INTERVAL=str(SWEEP_INTERVAL),
            # One user stands in for a whole team's tabs here (200 sockets in one test).
            WS_MAX_SOCKETS_PER_USER="1000",
            **{
                # The hundred replies at once of test_production are one person's.
                "CONCURRENT_REPLIES": "1000",
                "SEND_PER_MINUTE": "1000",
                **extra_env,
            },
        )
        manage(env, "migrate", "--noinput")
        password = "correct-horse-battery-staple-9"
        # One manage.py run for the user and their (simulator) token: each run starts Django.
        manage(
            env,
            "shell",
            "-c",
            "from chat import tokens; from chat.models import User; "
            f"tokens.store_token(User.objects.create_user('alice', '', {password!r}), "
            "'sk-alice-production-0001')",
        )
        logs = [tmp / "daphne-1.log", tmp / "daphne-2.log"]
        # Shown with a failing test's captured setup output.
        print(f"daphne logs: {logs[0]} {logs[1]}; database {db_name}; Redis prefix {prefix}")
        url1, _ = cleanup.enter_context(app_server(env, log_path=logs[0]))
        url2, _ = cleanup.enter_context(app_server(env, log_path=logs[1]))
        yield Stack(
            database_url=database_url,
            url1=url1,
            url2=url2,
            env=env,
            password=password,
            sim_url=sim_url,
            cookies1=login(url1, "alice", password),
            cookies2=login(url2, "alice", password),
            logs=logs,
        )


@contextmanager
def third_process(
    stack: Stack, log: Path
) -> Iterator[tuple[str, httpx.Cookies, subprocess.Popen[bytes]]]:
    """One more app process of the stack, with a session of its own: for a test that kills a
    process, so that the two every other test shares live on, whatever the order."""
    with app_server(stack.env, log_path=log) as (url, proc):
        stack.logs.append(log)
        try:
            yield url, login(url, "alice", stack.password), proc
        finally:
            stack.logs.remove(log)


def _create_database(name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def _drop_database(name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _delete_redis_keys(prefix: str) -> None:
    """Leave nothing of this run behind in Redis (pub/sub keeps nothing, but be sure)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@dataclass(frozen=True)
class Row:
    status: str
    content: str
    error_code: str


def _row(database_url: str, reply_id: str) -> Row:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        found = conn.execute(
            "SELECT status, content, error_code FROM chat_message WHERE public_id = %s",
            (reply_id,),
        ).fetchone()
    assert found is not None, f"no message {reply_id} in the database"
    return Row(*found)


async def reply_row(stack: Stack, reply_id: str) -> Row:
    return await asyncio.to_thread(_row, stack.database_url, reply_id)


async def row_until(
    stack: Stack, reply_id: str, predicate: Callable[[Row], bool], what: str, timeout: float
) -> Row:
    deadline = time.monotonic() + timeout
    while True:
        row = await reply_row(stack, reply_id)
        if predicate(row):
            return row
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout} s the reply row is still not {what}: {row}")
        await asyncio.sleep(0.05)


# --- a WebSocket client that keeps what a browser would show -----------------------------------


class ChatClient:
    """One browser tab: reads every frame in the background and rebuilds each reply's text the
    way the page does (`page`, tests/protocol.py); a problem the page records (a gap, an
    overlap) fails every later wait."""

    def __init__(self, name: str, ws: ClientConnection) -> None:
        self.name = name
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self.page = Page()
        self.closed = False
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read(), name=f"{name} reader")

    @classmethod
    async def open(cls, name: str, base_url: str, cookies: httpx.Cookies) -> ChatClient:
        client = cls(name, await _connect(base_url, cookies))
        await client.expect("hello")
        return client

    @classmethod
    async def refused(cls, base_url: str, cookies: httpx.Cookies) -> int | None:
        """Open a socket the server is expected to close before `hello`: its close code."""
        ws = await _connect(base_url, cookies)
        try:
            frame = await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT)
        except ConnectionClosed:
            return ws.close_code
        await ws.close()
        raise AssertionError(f"the socket was not refused: it said {frame!r}")

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def send_message(
        self, text: str, model: str, conversation: str | None = None
    ) -> tuple[str, str]:
        """`send` a turn; returns (conversation id, reply id) from its ack."""
        frame = send_frame(
            text, model, conversation, system=None, temperature=None, max_tokens=None
        )
        await self.send(frame)
        ack = await self.expect("ack", client_id=frame["client_id"])
        assert ack["duplicate"] is False
        user, reply = ack["messages"]
        assert (user["role"], reply["role"], reply["status"]) == ("user", "assistant", "streaming")
        return ack["conversation"], reply["id"]

    async def new_conversation(self) -> str:
        """A conversation with one finished (quick) turn in it."""
        conversation, reply = await self.send_message("hello", "sim/echo")
        done = await self.done(reply)
        assert done["status"] == "complete", done
        return conversation

    async def subscribe(self, conversation: str) -> dict[str, Any]:
        start = len(self.frames)
        await self.send({"type": "subscribe", "conversation": conversation})
        return await self.expect("history", conversation=conversation, start=start)

    async def done(self, reply_id: str, timeout: float = REPLY_TIMEOUT) -> dict[str, Any]:
        frame = await self.expect("done", reply=reply_id, timeout=timeout)
        message: dict[str, Any] = frame["message"]
        return message

    async def expect(
        self, frame_type: str, *, timeout: float = FRAME_TIMEOUT, start: int = 0, **fields: Any
    ) -> dict[str, Any]:
        """The first frame (from index `start`) of this type with these field values."""

        def match(frame: dict[str, Any]) -> bool:
            return frame["type"] == frame_type and all(
                frame.get(key) == value for key, value in fields.items()
            )

        found: dict[str, Any] | None = None

        def seen() -> bool:
            nonlocal found
            found = next((f for f in self.frames[start:] if match(f)), None)
            return found is not None

        await self.wait_until(seen, f"a {frame_type} frame with {fields}", timeout)
        assert found is not None
        return found

    async def wait_until(self, condition: Callable[[], bool], what: str, timeout: float) -> None:
        async def poll() -> None:
            while True:
                self.check()
                if condition():
                    return
                if self.closed:
                    raise AssertionError(f"{self.name}: socket closed before {what}")
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(poll(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"{self.name}: no {what} within {timeout} s; frames: {self._summary()}"
            ) from None

    def check(self) -> None:
        assert not self.page.problems, f"{self.name}: {self.page.problems}"
        errors = [f for f in self.frames if f["type"] == "error"]
        assert not errors, f"{self.name} got error frames: {errors}"

    async def close(self) -> None:
        await asyncio.wait_for(self.ws.close(), FRAME_TIMEOUT)
        await asyncio.wait_for(self._reader, FRAME_TIMEOUT)

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                frame = json.loads(raw)
                self.frames.append(frame)
                self.page.apply(frame)
                self._changed.set()
        except ConnectionClosed:
            pass  # a killed server: the waits report the closed socket
        except Exception as exc:
            self.page.problems.append(f"reader failed: {exc!r}")
        finally:
            self.closed = True
            self._changed.set()

    def trace(self, reply_id: str) -> str:
        """The reply's frames as this socket got them, short: for failure messages."""
        parts = []
        for frame in self.frames:
            if frame.get("reply") == reply_id or any(
                m.get("id") == reply_id for m in frame.get("messages", [])
            ):
                if frame["type"] == "delta":
                    parts.append(f"delta@{frame['offset']}+{len(frame['text'])}")
                elif frame["type"] == "snapshot":
                    parts.append(f"snapshot:{len(frame['text'])}")
                elif frame["type"] == "done":
                    message = frame["message"]
                    parts.append(f"done:{message['status']}:{len(message['content'])}")
                else:
                    parts.append(frame["type"])
        return f"{self.name}: " + " ".join(parts)

    def _summary(self) -> str:
        counts: dict[str, int] = {}
        for frame in self.frames:
            counts[frame["type"]] = counts.get(frame["type"], 0) + 1
        tail = [
            {k: (v if k != "text" else f"<{len(v)} chars>") for k, v in f.items()}
            for f in self.frames[-3:]
        ]
        return f"{counts}, last: {tail}"


OpenPair = Callable[[], Awaitable[tuple[ChatClient, ChatClient]]]


@asynccontextmanager
async def client_pairs(
    stack: Stack, a_on: tuple[str, httpx.Cookies] | None = None
) -> AsyncIterator[OpenPair]:
    """Opens ("A" on process 1, or on the (URL, session) `a_on`; "B" on process 2) when called;
    closes whatever is left open."""
    opened: list[ChatClient] = []
    a_url, a_cookies = a_on or (stack.url1, stack.cookies1)
    a_name = "A (process 1)" if a_on is None else f"A ({a_url})"

    async def open_pair() -> tuple[ChatClient, ChatClient]:
        a = await ChatClient.open(a_name, a_url, a_cookies)
        opened.append(a)
        b = await ChatClient.open("B (process 2)", stack.url2, stack.cookies2)
        opened.append(b)
        return a, b

    try:
        yield open_pair
    finally:
        await asyncio.gather(*(client.close() for client in opened), return_exceptions=True)
        # Shown only when the test failed, with its captured teardown output.
        for log in stack.logs:
            print(f"--- errors in {log.name} so far ---")
            print(_errors(log))


def _errors(log: Path) -> str:
    """The error lines of a daphne log and the exception each ends with, without tracebacks."""
    if not log.exists():
        return ""
    lines = log.read_text(errors="replace").splitlines()
    keep = [
        line
        for line in lines
        if " ERROR " in line or (line[:1].isalpha() and ("Error" in line or "Exception" in line))
    ]
    return "\n".join(keep)


async def _connect(base_url: str, cookies: httpx.Cookies) -> ClientConnection:
    ws_url = base_url.replace("http://", "ws://", 1) + "/ws/chat/"
    cookie = "; ".join(f"{key}={value}" for key, value in cookies.items())
    return await asyncio.wait_for(
        connect(ws_url, origin=Origin(base_url), additional_headers={"Cookie": cookie}, proxy=None),
        FRAME_TIMEOUT,
    )


def assert_shown(reply_id: str, expected: str, *clients: ChatClient) -> None:
    """Each client followed the reply to exactly `expected` before `done` replaced it."""
    for client in clients:
        shown = client.page.streamed[reply_id]
        assert shown == expected, (
            f"{client.name} was shown {len(shown)} characters, not the {len(expected)} stored; "
            f"it ends {shown[-40:]!r}, the stored text ends {expected[-40:]!r}\n"
            + "\n".join(c.trace(reply_id) for c in clients)
        )


def assert_no_problems(*clients: ChatClient) -> None:
    for client in clients:
        client.check()


async def upstream_calls(stack: Stack) -> int:
    async with httpx.AsyncClient() as client:
        stats = (await client.get(stack.sim_url.removesuffix("/_f_") + "/_sim/stats")).json()
    return int(stats["chat_completions"])


def _count(database_url: str, sql: str, *args: object) -> int:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(sql, args).fetchone()
    assert row is not None
    return int(row[0])


async def count(stack: Stack, sql: str, *args: object) -> int:
    return await asyncio.to_thread(_count, stack.database_url, sql, *args)
