"""The orphan sweep: a reply whose process stopped heart-beating (killed, frozen, cut off from the
database) is marked `interrupted`, keeping its last checkpoint, and its `done` announced. The same
periodic task purges deleted conversations whose undo window has passed (chat.conversations)."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from chat import branches, database
from chat.conversations import purge_deleted
from chat.models import Conversation, Message
from chat.replies import events
from chat.replies.hub import get_hub
from chat.usage import record_reply as record_usage

log = logging.getLogger(__name__)

ORPHANED = {
    "status": Message.Status.INTERRUPTED,
    "error_code": "interrupted",
    "error_message": "The server writing this reply stopped responding. The text saved before "
    "that is kept.",
}


def sweep_orphans() -> list[Message]:
    """Mark replies whose process stopped heart-beating as interrupted; return them."""
    return mark_interrupted(orphan_candidates())


def orphan_candidates() -> list[int]:
    cutoff = timezone.now() - timedelta(seconds=settings.REPLY_ORPHAN_AFTER)
    return list(Message.objects.orphaned(cutoff).values_list("pk", flat=True))


def mark_interrupted(candidates: list[int]) -> list[Message]:
    cutoff = timezone.now() - timedelta(seconds=settings.REPLY_ORPHAN_AFTER)
    swept = []
    for pk in candidates:
        # Conditional again, row by row: a reply that beat its heart since the query is alive.
        with transaction.atomic():
            # The conversation first, in the order a send and a final write lock (no deadlock).
            locked = Conversation.objects.select_for_update(of=("self",), no_key=True).filter(
                messages__pk=pk
            )
            list(locked.values_list("pk", flat=True))
            if (
                Message.objects.orphaned(cutoff)
                .filter(pk=pk)
                .update(**ORPHANED, finished_at=timezone.now())
            ):
                reply = Message.objects.select_related("conversation__owner").get(pk=pk)
                # What it consumed, estimated from its last checkpoint (its process took
                # Nobox's count with it); a late final write of the same reply corrects it.
                record_usage(reply, None, None)
                swept.append(reply)
    return swept


def _database_was_away() -> bool:
    # This process could not reach the database a moment ago (or waited for it), and neither,
    # likely, could the processes whose heartbeats now look stale: give them time to beat again.
    return database.healthy_for() < settings.REPLY_ORPHAN_AFTER


async def sweep_and_announce() -> int:
    if _database_was_away():
        return 0
    candidates = await database.in_db_pool(orphan_candidates)()
    if not candidates or _database_was_away():
        return 0
    swept = await database.in_db_pool(mark_interrupted)(candidates)
    if swept:
        log.warning(
            "marked %d orphaned replies interrupted: %s",
            len(swept),
            ", ".join(message.public_id for message in swept),
        )
    hub = await get_hub()
    wired = await database.in_db_pool(branches.wire_any)(swept)
    for message, wire in zip(swept, wired, strict=True):
        hub.publish(message.conversation.public_id, events.done(wire))
    return len(swept)


_sweepers: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}


def ensure_sweeper() -> None:
    """Start this process's periodic sweep (once per event loop)."""
    loop = asyncio.get_running_loop()
    task = _sweepers.get(loop)
    if task is None or task.done():
        _sweepers[loop] = loop.create_task(_sweep_forever(), name="reply sweeper")


async def _sweep_forever() -> None:
    while True:
        try:
            await sweep_and_announce()
        except Exception:
            log.exception("reply sweep failed")
        try:
            await database.in_db_pool(purge_deleted)()
        except Exception:
            log.exception("purging deleted conversations failed")
        await asyncio.sleep(settings.REPLY_SWEEP_INTERVAL)
