"""Async code reaches the ORM through here: a small pool of threads of our own.

Why not Channels' `database_sync_to_async`: by default it runs every call on asgiref's one shared
sync thread, so fifty `send`s at once queue behind each other and behind every sync view; and it
closes connections around each call, so each call opened a new one. Here each thread keeps its
connection (SQLite: persistent; PostgreSQL: borrowed from Django's pool and given back), checked
and replaced when broken, as Django's request cycle does.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections

P = ParamSpec("P")
R = TypeVar("R")

_executor: ThreadPoolExecutor | None = None
# When a database call of this process last failed to reach the database, or waited too long for
# it (time.monotonic()), or None. Only connection-level errors count: an IntegrityError is an
# answer, not an outage. Slow counts too: during an outage a call may wait for the pool to
# reconnect instead of failing.
SLOW_CALL_SECONDS = 1.0
_last_failure: float | None = None


def healthy_for() -> float:
    """Seconds since a database call of this process last failed (infinite if none did)."""
    return math.inf if _last_failure is None else time.monotonic() - _last_failure


def _pool() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(
            max_workers=settings.DATABASE_THREADS, thread_name_prefix="orm"
        )
    return _executor


def _with_fresh_connection(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    # Drops a connection that is broken or past its age before and after the call (a restarted
    # PostgreSQL must cost one failed call at most, not a dead thread).
    global _last_failure
    started = time.monotonic()
    close_old_connections()
    try:
        return fn(*args, **kwargs)
    except (OperationalError, InterfaceError):
        _last_failure = time.monotonic()
        raise
    finally:
        close_old_connections()
        if time.monotonic() - started > SLOW_CALL_SECONDS:
            _last_failure = time.monotonic()


def in_db_pool(fn: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """Make a synchronous ORM function awaitable, run in the ORM thread pool."""

    @functools.wraps(fn)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        loop = asyncio.get_running_loop()
        call = functools.partial(_with_fresh_connection, fn, *args, **kwargs)
        return await loop.run_in_executor(_pool(), call)

    return run
