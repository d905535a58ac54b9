"""Mark replies orphaned by a dead server process as interrupted (each daphne process also does
this every REPLY_SWEEP_INTERVAL seconds; this command is for cron or after a full outage), and
purge deleted conversations whose undo window has passed."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from chat.conversations import purge_deleted
from chat.replies.sweep import sweep_orphans


class Command(BaseCommand):
    help = (
        "Mark streaming replies with a stale heartbeat as interrupted; purge deleted "
        "conversations whose undo window has passed."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        swept = sweep_orphans()
        self.stdout.write(f"Marked {len(swept)} orphaned replies as interrupted.")
        purged = purge_deleted()
        self.stdout.write(f"Purged {purged} deleted conversations.")
