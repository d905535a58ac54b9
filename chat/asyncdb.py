"""Typed bridge from async code (consumer, generation tasks) to the synchronous ORM."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar, cast

from channels.db import database_sync_to_async

P = ParamSpec("P")
R = TypeVar("R")


def db_sync(fn: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """Run `fn` in Channels' database thread, which also closes stale connections; a long-lived
    ASGI process would otherwise keep dead ones."""
    return cast(Callable[P, Awaitable[R]], database_sync_to_async(fn))
