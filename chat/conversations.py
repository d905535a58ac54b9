"""The conversation list's actions: pin, archive, delete with undo, and the purge after it.

Deleting is soft: `deleted_at` hides the conversation everywhere at once (chat.access and the
sidebar see live conversations only) and stops a running reply; for CONVERSATION_UNDO_SECONDS it
can be restored, then the periodic sweep (chat.replies.sweep) or `manage.py sweep_replies`
purges it with its messages.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from chat.access import NotFound, conversation_for
from chat.models import Conversation, Message, User
from chat.replies import events
from chat.replies.hub import tell_from_thread

log = logging.getLogger(__name__)


class UndoExpired(Exception):
    """The conversation was deleted longer ago than the undo window allows."""


@dataclass(frozen=True)
class Deleted:
    conversation: Conversation
    undo_until: datetime
    stopped_reply: str | None


def undo_window() -> timedelta:
    return timedelta(seconds=settings.CONVERSATION_UNDO_SECONDS)


def delete(user: User, public_id: str) -> Deleted:
    """Hide the conversation and stop its running reply at once, wherever it runs (the stop goes
    over the bus to the generating process, as the socket's `stop` does). The stopped reply
    keeps its text, so an undo brings back exactly what was on screen."""
    conversation = conversation_for(user, public_id)
    now = timezone.now()
    conversation.deleted_at = now
    conversation.save(update_fields=["deleted_at"])
    reply_id = (
        Message.objects.streaming()
        .filter(conversation=conversation)
        .values_list("public_id", flat=True)
        .first()
    )
    if reply_id is not None:
        tell_from_thread(events.reply_channel(reply_id), events.stop(reply_id))
    # Its shared links stop opening at once (ShareLink.objects.usable); their open viewers are
    # closed now too, not at the purge that deletes the links after the undo window.
    hashes = list(conversation.share_links.values_list("token_hash", flat=True))
    transaction.on_commit(lambda: _close_viewers(hashes))
    return Deleted(conversation, now + undo_window(), reply_id)


def _close_viewers(token_hashes: list[str]) -> None:
    for token_hash in token_hashes:
        tell_from_thread(events.share_channel(token_hash), events.share_closed())


def restore(user: User, public_id: str) -> Conversation:
    """Undo a delete inside its window. NotFound for a conversation that is not this user's or
    is already gone; UndoExpired once the window has passed (even if not purged yet)."""
    if not public_id or len(public_id) > 32:
        raise NotFound
    deleted = Conversation.objects.filter(
        owner=user, public_id=public_id, deleted_at__isnull=False
    ).first()
    if deleted is None:
        raise NotFound
    # Conditional: a purge that took the row meanwhile wins, and a late undo cannot revive it.
    if not Conversation.objects.filter(
        pk=deleted.pk, deleted_at__gte=timezone.now() - undo_window()
    ).update(deleted_at=None):
        raise UndoExpired
    deleted.deleted_at = None
    return deleted


def set_pinned(user: User, public_id: str, pinned: bool) -> Conversation:
    conversation = conversation_for(user, public_id)
    conversation.pinned_at = timezone.now() if pinned else None
    conversation.save(update_fields=["pinned_at"])
    return conversation


def set_archived(user: User, public_id: str, archived: bool) -> Conversation:
    conversation = conversation_for(user, public_id)
    conversation.archived_at = timezone.now() if archived else None
    conversation.save(update_fields=["archived_at"])
    return conversation


def purge_deleted() -> int:
    """Remove conversations whose undo window has passed, with their messages; return how many.

    Safe in every process at once: each row is locked and re-checked before it goes (a second
    process finds nothing, an undo that won the race keeps it). A conversation whose reply is
    still marked streaming waits: its generating process was told to stop and will make its final
    write, or the orphan sweep will end it, and the next purge takes it."""
    cutoff = timezone.now() - undo_window()
    candidates = list(
        Conversation.objects.filter(deleted_at__lt=cutoff)
        .exclude(messages__status=Message.Status.STREAMING)
        .values_list("pk", flat=True)
    )
    purged = 0
    for pk in candidates:
        with transaction.atomic():
            locked = (
                Conversation.objects.select_for_update()
                .filter(pk=pk, deleted_at__lt=cutoff)
                .exclude(messages__status=Message.Status.STREAMING)
            )
            if locked.exists():
                Conversation.objects.filter(pk=pk).delete()
                purged += 1
    if purged:
        log.info("purged %d deleted conversations", purged)
    return purged


def sidebar(user: User, limit: int) -> list[Conversation]:
    """The user's live conversations for the sidebar, most recent first (the page groups them)."""
    # Pinned ones first, so no number of newer chats pushes them out of the list.
    return list(
        Conversation.objects.live()
        .filter(owner=user)
        .order_by(F("pinned_at").desc(nulls_last=True), "-updated_at")
        .only("public_id", "title", "updated_at", "pinned_at", "archived_at")[:limit]
    )


def summary(conversation: Conversation) -> dict[str, object]:
    """A conversation as the sidebar's JSON endpoints describe it."""
    return {
        "id": conversation.public_id,
        "title": conversation.display_title,
        "updated_at": conversation.updated_at.isoformat(),
        "pinned": conversation.pinned_at is not None,
        "archived": conversation.archived_at is not None,
    }
