"""Typed bridges from async code (consumer, generation tasks) to the synchronous ORM."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar, cast

from channels.db import DatabaseSyncToAsync, database_sync_to_async

P = ParamSpec("P")
R = TypeVar("R")


def db_sync(fn: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """Run `fn` in Channels' database thread, which also closes stale connections; a long-lived
    ASGI process would otherwise keep dead ones."""
    return cast(Callable[P, Awaitable[R]], database_sync_to_async(fn))


def db_sync_apart(fn: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """Like `db_sync`, but in a pool thread of its own instead of the process's one shared sync
    thread. For writes that must not queue behind other sync work (a slow admin action, a
    view): a streaming reply's heartbeat that waits there looks like a dead process to the
    sweep in every other process."""
    return cast(Callable[P, Awaitable[R]], DatabaseSyncToAsync(fn, thread_sensitive=False))
