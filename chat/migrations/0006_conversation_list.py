"""Pinned, archived and (soft) deleted conversations; a full-text index on message text, built
only on PostgreSQL (SQLite searches with LIKE, see chat/search.py)."""

from __future__ import annotations

from typing import Any

from django.db import migrations, models

# The expression must stay exactly the one chat.search filters on, or PostgreSQL ignores it.
SEARCH_INDEX = "chat_message_content_fts"
CREATE_SEARCH_INDEX = (
    f"CREATE INDEX IF NOT EXISTS {SEARCH_INDEX} ON chat_message "
    "USING GIN (to_tsvector('simple', content))"
)
DROP_SEARCH_INDEX = f"DROP INDEX IF EXISTS {SEARCH_INDEX}"


def create_search_index(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE_SEARCH_INDEX)


def drop_search_index(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_SEARCH_INDEX)


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0003_audit_and_admin"),
    ]

    operations = [
        migrations.AddField(
            model_name="conversation",
            name="pinned_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="conversation",
            name="archived_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="conversation",
            name="deleted_at",
            field=models.DateTimeField(blank=True, db_index=True, null=True),
        ),
        migrations.RunPython(create_search_index, drop_search_index, elidable=False),
    ]
