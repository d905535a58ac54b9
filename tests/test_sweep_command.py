"""`manage.py sweep_replies`: for cron or after a full outage, when no process is left to sweep."""

from __future__ import annotations

import io
from datetime import datetime, timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from chat.models import Conversation, Message, User

pytestmark = pytest.mark.django_db


def test_it_interrupts_only_the_replies_whose_process_stopped(alice: User) -> None:
    now = timezone.now()

    def reply(heartbeat_at: datetime) -> Message:
        conversation = Conversation.objects.create(owner=alice, next_seq=3)
        Message.objects.create(conversation=conversation, seq=1, role="user", content="q")
        return Message.objects.create(
            conversation=conversation,
            seq=2,
            role="assistant",
            status="streaming",
            content="half",
            heartbeat_at=heartbeat_at,
        )

    orphan = reply(now - timedelta(minutes=5))
    alive = reply(now)
    out = io.StringIO()

    call_command("sweep_replies", stdout=out)

    assert out.getvalue().splitlines() == [
        "Marked 1 orphaned replies as interrupted.",
        "Purged 0 deleted conversations.",
    ]
    orphan.refresh_from_db()
    alive.refresh_from_db()
    assert (orphan.status, orphan.content) == ("interrupted", "half")
    assert alive.status == "streaming"
