"""Pinned, archived and (soft) deleted conversations; full-text search of message text, built
only on PostgreSQL (SQLite searches with LIKE, see chat/search.py)."""

from __future__ import annotations

from typing import Any

from django.db import migrations, models

# PostgreSQL keeps each message's words in a stored generated column with a GIN index on it:
# chat.search matches `content_search @@ websearch_to_tsquery('simple', q)`. Stored rather than
# an index on the expression: where the planner walks a user's newest conversations and checks
# their messages one by one (a common word), each check reads the stored vector instead of
# parsing the text again (measured by bench/search.py: 100-160 ms became a few ms). Django's
# model does not know the column; PostgreSQL fills it on every insert and update.
SEARCH_COLUMN = "content_search"
SEARCH_INDEX = "chat_message_content_fts"
CREATE_SEARCH = [
    f"ALTER TABLE chat_message ADD COLUMN {SEARCH_COLUMN} tsvector "
    "GENERATED ALWAYS AS (to_tsvector('simple', content)) STORED",
    f"CREATE INDEX {SEARCH_INDEX} ON chat_message USING GIN ({SEARCH_COLUMN})",
]
DROP_SEARCH = [
    f"DROP INDEX IF EXISTS {SEARCH_INDEX}",
    f"ALTER TABLE chat_message DROP COLUMN IF EXISTS {SEARCH_COLUMN}",
]


def create_search_index(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        for statement in CREATE_SEARCH:
            schema_editor.execute(statement)


def drop_search_index(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        for statement in DROP_SEARCH:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0006_attachments"),
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
