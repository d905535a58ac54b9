"""Where a process's `send`s are stored: in groups, one database call and one transaction per
group (`turns.store_turns`), while a group is being stored the next one gathers.

Why: fifty people pressing Send at once used to be fifty transactions queued on the database
thread (SQLite has one; PostgreSQL's are shared with every other ORM call), so the last `ack`
waited for all the others. A group costs little more than one send, so the wait for an `ack` is
about one group's time, not one per send ahead of it. One send alone is stored at once: a group
only forms while the database is busy with the previous one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from chat.database import in_db_pool
from chat.incoming_frames import SendRequest
from chat.models import User
from chat.replies import generation
from chat.replies.turns import Refused, Turn, store_turns

# The most sends one transaction takes: keeps one group's locks and statement sizes bounded.
MAX_GROUP = 64


@dataclass
class _Waiting:
    user: User
    request: SendRequest
    answer: asyncio.Future[Turn] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Intake:
    def __init__(self) -> None:
        self._waiting: list[_Waiting] = []
        self._storing: asyncio.Task[None] | None = None

    async def store(self, user: User, request: SendRequest) -> Turn:
        """Store a `send` (raises Refused): the stored turn, fresh or a duplicate.

        A fresh turn's generation is the caller's to start; if the caller is gone by then (its
        socket closed), the intake starts it: the person's message was stored and answered."""
        waiting = _Waiting(user, request)
        self._waiting.append(waiting)
        if self._storing is None:
            self._storing = asyncio.create_task(self._store_all(), name="store sends")
        return await waiting.answer

    async def _store_all(self) -> None:
        try:
            while self._waiting:
                group, self._waiting = self._waiting[:MAX_GROUP], self._waiting[MAX_GROUP:]
                await self._store_group(group)
        finally:
            self._storing = None

    async def _store_group(self, group: list[_Waiting]) -> None:
        try:
            results = await in_db_pool(store_turns)([(w.user, w.request) for w in group])
        except Exception as exc:  # noqa: BLE001 - each waiting send gets the failure as its own
            for waiting in group:
                if not waiting.answer.done():
                    waiting.answer.set_exception(exc)
            return
        for waiting, result in zip(group, results, strict=True):
            if not waiting.answer.done():
                _answer(waiting.answer, result)
            elif isinstance(result, Turn) and not result.duplicate:
                await generation.start(result)


def _answer(answer: asyncio.Future[Turn], result: Turn | Refused) -> None:
    if isinstance(result, Refused):
        answer.set_exception(result)
    else:
        answer.set_result(result)


_intakes: dict[asyncio.AbstractEventLoop, Intake] = {}


def get_intake() -> Intake:
    """This event loop's intake (one per process in production; tests run several loops)."""
    loop = asyncio.get_running_loop()
    intake = _intakes.get(loop)
    if intake is None:
        for stale in [other for other in _intakes if other.is_closed()]:
            del _intakes[stale]
        intake = _intakes[loop] = Intake()
    return intake
