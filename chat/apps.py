from __future__ import annotations

from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_delete

        from chat import sharing, sign_out  # noqa: F401  (connect their signal handlers)
        from chat.attachments import delete_stored_file
        from chat.models import Attachment

        post_delete.connect(delete_stored_file, sender=Attachment)
