"""Rows the relay tests start from, written straight to the database."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from chat.database import in_db_pool
from chat.models import Conversation, Message, User


@in_db_pool
def streaming_reply(
    owner: User,
    content: str = "",
    beat_seconds_ago: float = 0.0,
    conversation: Conversation | None = None,
) -> Message:
    """A question and a reply still `streaming` whose heartbeat was `beat_seconds_ago` (in a new
    conversation unless one is given); the reply, with its conversation."""
    if conversation is None:
        conversation = Conversation.objects.create(owner=owner, title="t", next_seq=1)
    Message.objects.create(conversation=conversation, seq=1, role="user", content="q")
    reply = Message.objects.create(
        conversation=conversation,
        seq=2,
        role="assistant",
        status="streaming",
        content=content,
        heartbeat_at=timezone.now() - timedelta(seconds=beat_seconds_ago),
    )
    Conversation.objects.filter(pk=conversation.pk).update(next_seq=3)
    return Message.objects.select_related("conversation").get(pk=reply.pk)


def finish(pk: int, **columns: Any) -> Message:
    """End a streaming reply with `columns` (content, status, ...), as its final write does."""
    return Message.objects.finish_many({pk: columns})[pk]
