"""Re-encrypt every stored Nobox token under the first key of NOBOX_TOKEN_KEYS.

Rotation: put the new key first and keep the old ones after it, restart, run this, then drop the
old keys. Safe to run again; every token stays readable throughout.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from chat.tokens import rotate_keys


class Command(BaseCommand):
    help = "Re-encrypt every Nobox token under the first NOBOX_TOKEN_KEYS key (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        report = rotate_keys(actor_name="manage.py rotate_token_keys")
        self.stdout.write(
            f"Re-encrypted {report.rotated} token(s); {report.current} already under the first "
            f"key; {report.unreadable} unreadable with any key (their owners must re-enter them)."
        )
