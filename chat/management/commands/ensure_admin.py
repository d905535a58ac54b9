"""Create the first admin account when there is none, and say how to sign in."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from chat import audit
from chat.models import AuditEvent, User

Action = AuditEvent.Action


class Command(BaseCommand):
    help = "Create a first admin account if no admin exists yet; print how to sign in."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--password", help="default: generated and saved under var/")

    def handle(self, *args: Any, **options: Any) -> None:
        if User.objects.filter(is_superuser=True, is_active=True).exists():
            self.stdout.write(f"An admin account exists. {self._where_password()}")
            return
        password = options["password"] or secrets.token_urlsafe(12)
        admin = User.objects.create_superuser(options["username"], "", password)
        for action in (Action.USER_CREATED, Action.USER_MADE_SUPERUSER):
            audit.record(action, actor=None, actor_name="manage.py ensure_admin", target=admin)
        if not options["password"]:
            path = settings.VAR_DIR / "initial_admin_password"
            path.write_text(password + "\n")
            path.chmod(0o600)
        self.stdout.write(
            self.style.SUCCESS(
                f"Created admin account '{options['username']}' with password: {password}\n"
                "Sign in, then change the password under Settings."
            )
        )

    def _where_password(self) -> str:
        path = settings.VAR_DIR / "initial_admin_password"
        if path.exists():
            return f"The first admin's generated password is in {path}."
        return ""
