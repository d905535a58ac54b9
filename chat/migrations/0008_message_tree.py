"""Messages form a tree (chat.branches): each message may name the one it follows, and a
conversation remembers the branch the person sees. Existing rows keep parent_seq NULL, which
chat.branches reads as "the message before it": each conversation stays one branch."""

from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("chat", "0007_conversation_list")]

    operations = [
        migrations.AddField(
            model_name="message",
            name="parent_seq",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="conversation",
            name="leaf_seq",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="conversation",
            name="branched",
            field=models.BooleanField(default=False),
        ),
    ]
