"""Save a user's Nobox token from the shell (read from stdin so it stays out of shell history)."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from chat import tokens
from chat.models import User

# Audit rows name the command, not the user whose token it sets: that user did nothing.
ACTOR = "manage.py set_nobox_token"


class Command(BaseCommand):
    help = "Store USER's Nobox token, read from standard input (not verified with Nobox)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            user = User.objects.get(username=options["username"])
        except User.DoesNotExist as exc:
            raise CommandError(f"No user {options['username']!r}") from exc
        token = sys.stdin.readline().strip()
        if not token:
            raise CommandError("Give the token on standard input.")
        try:
            record = tokens.store_token(user, token, actor_name=ACTOR)
        except tokens.MalformedToken as problem:
            raise CommandError(f"Nothing was saved: {problem}") from None
        self.stdout.write(f"Saved token …{record.last4} for {user.username}.")
