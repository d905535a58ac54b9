"""Where a process's `send`s are stored: in groups (`batches.Batches`), one database call and one
transaction per group (`turns.store_turns`); while a group is being stored the next one gathers.
"""

from __future__ import annotations

from chat.incoming_frames import SendRequest
from chat.models import User
from chat.replies import generation
from chat.replies.batches import Batches, per_loop
from chat.replies.turns import Turn, store_turns

# The most sends one transaction takes: keeps one group's locks and statement sizes bounded.
MAX_GROUP = 64


class Intake:
    def __init__(self) -> None:
        self._batches: Batches[tuple[User, SendRequest], Turn] = Batches(
            store_turns, MAX_GROUP, "store sends", unheard=_start_anyway
        )

    async def store(self, user: User, request: SendRequest) -> Turn:
        """Store a `send` (raises Refused): the stored turn, fresh or a duplicate.

        A fresh turn's generation is the caller's to start; if the caller is gone by then (its
        socket closed), the intake starts it: the person's message was stored and answered."""
        return await self._batches.submit((user, request))

    async def drained(self) -> None:
        """Wait until every send handed in so far is stored (and, if unheard, started)."""
        await self._batches.drained()


async def _start_anyway(turn: Turn) -> None:
    if not turn.duplicate:
        await generation.start(turn)


get_intake = per_loop(Intake)
