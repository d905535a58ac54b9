"""A running reply's database writes: its checkpoints (the text so far, at a bounded rate, which
is also its heartbeat) and its one final write (text, outcome and usage in one transaction).

Both are grouped over the process's replies: one checkpoint write per interval for all of them,
and final writes that come together land together (`final_writes`, chat.replies.batches).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, transaction
from django_stubs_ext import StrOrPromise

from chat.database import in_db_pool
from chat.models import Message
from chat.nobox import ModelInfo, Usage
from chat.replies.batches import Batches, per_loop
from chat.replies.relay import Coalescer
from chat.usage import record_replies

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """How a reply ended: its status, and what Nobox reported or we tell the person."""

    status: str
    finish_reason: str = ""
    usage: Usage | None = None
    error_code: str = ""
    # Lazy for the outcomes made once (generation.REFUSED_WRITE, SHUTDOWN): stored in the language
    # of the reply's task, i.e. of the person who sent.
    error_message: StrOrPromise = ""


class Writing(Protocol):
    """A reply being written, as its checkpoints see it (a running `Generation`)."""

    reply_pk: int
    text: Coalescer


class Checkpoints:
    """Every running reply of this process, checkpointed together: one write per interval
    whatever the number of replies or the token rate. It doubles as their heartbeat, which tells
    other processes this one is alive. A failed write is logged and tried again at the next
    interval: a loop that died silently would get live replies swept as orphaned."""

    def __init__(self) -> None:
        self._replies: set[Writing] = set()
        self._loops: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}

    def add(self, generation: Writing) -> None:
        self._replies.add(generation)
        loop = asyncio.get_running_loop()
        task = self._loops.get(loop)
        if task is None or task.done():
            self._loops[loop] = loop.create_task(self._write_forever(), name="checkpoints")

    def discard(self, generation: Writing) -> None:
        self._replies.discard(generation)

    async def _write_forever(self) -> None:
        while True:
            await asyncio.sleep(settings.REPLY_CHECKPOINT_INTERVAL)
            texts = {g.reply_pk: g.text.text for g in self._replies}
            if not texts:
                continue
            try:
                await _checkpoint(texts)
            except (DatabaseError, InterfaceError) as error:
                log.warning("checkpoint of %d replies failed: %s", len(texts), error)


checkpoints = Checkpoints()


@in_db_pool
def _checkpoint(texts: dict[int, str]) -> None:
    storable_texts = {reply_pk: storable(text) for reply_pk, text in texts.items()}
    try:
        with transaction.atomic():
            Message.objects.checkpoint(storable_texts)
        return
    except (OperationalError, InterfaceError):
        raise
    except DatabaseError:
        pass  # one reply's text was refused: write them one by one, so the others still beat
    for reply_pk, text in storable_texts.items():
        try:
            with transaction.atomic():
                Message.objects.checkpoint({reply_pk: text})
        except (OperationalError, InterfaceError):
            raise
        except DatabaseError:
            log.exception("checkpoint of reply %s refused", reply_pk)


@dataclass(frozen=True)
class Ending:
    """What a reply's final write stores."""

    reply_pk: int
    text: str
    outcome: Outcome
    model: ModelInfo | None

    def columns(self) -> dict[str, Any]:
        usage, model = self.outcome.usage, self.model
        pricing = model.pricing if model is not None else None
        cost = model.price.cost(usage) if model is not None else None
        return {
            "content": storable(self.text),
            "status": self.outcome.status,
            "finish_reason": self.outcome.finish_reason,
            "error_code": self.outcome.error_code,
            "error_message": str(self.outcome.error_message),
            "prompt_tokens": usage.prompt_tokens if usage else None,
            "completion_tokens": usage.completion_tokens if usage else None,
            "total_tokens": usage.total_tokens if usage else None,
            "pricing": pricing if isinstance(pricing, dict | list | str) else None,
            "cost": cost if cost is not None and cost < MAX_COST else None,
        }


def finish_replies(endings: list[Ending]) -> Sequence[Message | Exception]:
    """The final writes of replies that ended together: in one transaction, or, if that fails,
    each in its own, so that only a reply at fault fails. Each reply's result is its message or
    the exception its generation handles (`Generation._final_write` retries an outage, ends a
    refused write as an error)."""
    if len(endings) > 1:
        try:
            return finish_together(endings)
        except Exception:  # noqa: BLE001, S110 - told apart below, one reply at a time
            pass
    return [_finish_alone(ending) for ending in endings]


def finish_together(endings: list[Ending]) -> list[Message]:
    """Replies and what they consumed, in one transaction (they land together or not at all):
    four statements and a usage upsert, however many replies."""
    with transaction.atomic():
        replies = Message.objects.finish_many({e.reply_pk: e.columns() for e in endings})
        record_replies([(replies[e.reply_pk], e.outcome.usage, e.model) for e in endings])
    return [replies[e.reply_pk] for e in endings]


def _finish_alone(ending: Ending) -> Message | Exception:
    try:
        return finish_together([ending])[0]
    except Exception as exc:  # noqa: BLE001 - handed to the reply's own generation
        return exc


# The most final writes one transaction takes.
MAX_FINAL_WRITES = 64
final_writes = per_loop(lambda: Batches(finish_replies, MAX_FINAL_WRITES, "final writes"))


# What Message.cost (14 digits, 8 after the point) can hold.
MAX_COST = 10**6


def storable(text: str) -> str:
    """Text every database will store. A model may emit a NUL, which PostgreSQL refuses in a
    text column, or a lone surrogate (a JSON escape like "\\ud800"), which cannot be encoded
    for any database and would fail the write outside the database's own errors."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    return text if text.isascii() else LONE_SURROGATE.sub("\ufffd", text)


LONE_SURROGATE = re.compile("[\ud800-\udfff]")
