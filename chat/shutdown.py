"""Work to do when the server process stops gracefully.

Daphne implements no ASGI lifespan, but it runs on Twisted's asyncio reactor, whose "before
shutdown" triggers may return a Deferred that the reactor waits for (SIGTERM included). Outside
daphne (tests, management commands) registering does nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

_registered: set[str] = set()


def on_shutdown(name: str, work: Callable[[], Awaitable[None]]) -> None:
    """Run `work` once before the reactor shuts down; registering a name twice is a no-op."""
    if name in _registered:
        return
    try:
        from twisted.internet import defer, reactor
    except ImportError:
        return
    if not reactor.running:
        return
    _registered.add(name)

    def trigger() -> defer.Deferred[None]:
        return defer.Deferred.fromFuture(asyncio.ensure_future(work()))

    reactor.addSystemEventTrigger("before", "shutdown", trigger)  # type: ignore[arg-type]
