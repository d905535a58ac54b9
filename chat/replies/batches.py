"""Database work that arrives together, done together: items handed in while one batch is being
done gather into the next, and one call (one transaction, in the database pool) does each batch.

Why: fifty people pressing Send at once, or fifty replies ending at once, used to be fifty
transactions queued on the database thread (SQLite has one; PostgreSQL's are shared with every
other ORM call), so the last one waited for all the others. A batch costs little more than one
item, so a wait is about one batch's time, not one per item ahead of it. One item alone is done
at once: a batch only forms while the database is busy with the previous one.

Used for storing sends (`intake`) and for replies' final writes (`writes`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from chat.database import in_db_pool

Item = TypeVar("Item")
Result = TypeVar("Result")
Made = TypeVar("Made")


@dataclass
class _Waiting(Generic[Item, Result]):
    item: Item
    answer: asyncio.Future[Result] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Batches(Generic[Item, Result]):
    """`do` takes a batch and returns, for each item in order, its result or the exception its
    submitter gets; an exception raised by `do` itself goes to every item of the batch.

    `unheard` is called with an item's result when its submitter stopped waiting meanwhile (its
    task was cancelled, e.g. its socket closed): the work was done, and may need following up."""

    def __init__(
        self,
        do: Callable[[list[Item]], Sequence[Result | Exception]],
        largest: int,
        name: str,
        unheard: Callable[[Result], Awaitable[None]] | None = None,
    ) -> None:
        self._do = in_db_pool(do)
        self._largest = largest  # keeps one transaction's locks and statements bounded
        self._name = name
        self._unheard = unheard
        self._waiting: list[_Waiting[Item, Result]] = []
        self._working: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        waiting: _Waiting[Item, Result] = _Waiting(item)
        self._waiting.append(waiting)
        if self._working is None:
            self._working = asyncio.create_task(self._work(), name=self._name)
        return await waiting.answer

    async def drained(self) -> None:
        """Wait until every item handed in so far is done."""
        while self._working is not None:
            await asyncio.wait({self._working})

    async def _work(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self._largest]
                self._waiting = self._waiting[self._largest :]
                await self._do_batch(batch)
        finally:
            self._working = None

    async def _do_batch(self, batch: list[_Waiting[Item, Result]]) -> None:
        try:
            results = await self._do([waiting.item for waiting in batch])
        except Exception as exc:  # noqa: BLE001 - each waiting item gets the failure as its own
            for waiting in batch:
                if not waiting.answer.done():
                    waiting.answer.set_exception(exc)
            return
        for waiting, result in zip(batch, results, strict=True):
            if not waiting.answer.done():
                _answer(waiting.answer, result)
            elif self._unheard is not None and not isinstance(result, Exception):
                await self._unheard(result)


def _answer(answer: asyncio.Future[Result], result: Result | Exception) -> None:
    if isinstance(result, Exception):
        answer.set_exception(result)
    else:
        answer.set_result(result)


def per_loop(make: Callable[[], Made]) -> Callable[[], Made]:
    """A getter of one `make()` per running event loop: one per process in production, where
    there is one loop; tests run several loops, and a future belongs to one."""
    made: dict[asyncio.AbstractEventLoop, Made] = {}

    def get() -> Made:
        loop = asyncio.get_running_loop()
        found = made.get(loop)
        if found is None:
            for stale in [other for other in made if other.is_closed()]:
                del made[stale]
            found = made[loop] = make()
        return found

    return get
