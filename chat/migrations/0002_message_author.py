"""Idempotency keys become unique per person instead of per conversation: a `send` for a new chat
resent to another process must find the chat the first one made, not make a second."""

from __future__ import annotations

from typing import Any

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def copy_authors(apps: Any, schema_editor: Any) -> None:
    Message = apps.get_model("chat", "Message")
    Conversation = apps.get_model("chat", "Conversation")
    for conversation in Conversation.objects.all().only("pk", "owner_id").iterator():
        Message.objects.filter(conversation_id=conversation.pk, role="user").update(
            author_id=conversation.owner_id
        )


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="author",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.RunPython(copy_authors, migrations.RunPython.noop),
        migrations.RemoveConstraint(model_name="message", name="message_client_id_unique"),
        migrations.AddConstraint(
            model_name="message",
            constraint=models.UniqueConstraint(
                condition=models.Q(client_id__isnull=False),
                fields=("author", "client_id"),
                name="message_author_client_id_unique",
            ),
        ),
    ]
