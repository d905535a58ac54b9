"""Search over titles and message text (chat/search.py), on SQLite (the suite's database) and on
PostgreSQL (a database of its own, migrated here, with the full-text GIN index of migration 0006).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections
from django.test import Client
from django.utils import timezone

from chat import search
from chat.models import Conversation, Message, User
from tests.servers import service_or_skip

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_ALIAS = "search_pg"


def fill(using: str) -> dict[str, Any]:
    """Alice's and Bob's conversations; returns them by name."""
    users = User.objects.db_manager(using)
    alice = users.create_user("alice", "", "pw")
    bob = users.create_user("bob", "", "pw")

    def chat(owner: User, title: str, *texts: str) -> Conversation:
        conversation = Conversation(owner=owner, title=title, next_seq=len(texts) + 1)
        conversation.save(using=using)
        for seq, text in enumerate(texts, start=1):
            role = "user" if seq % 2 else "assistant"
            Message(conversation=conversation, seq=seq, role=role, content=text).save(using=using)
        return conversation

    return {
        "alice": alice,
        "bob": bob,
        "recipes": chat(alice, "Dinner ideas", "What goes with saffron?", "Risotto, paella."),
        "trip": chat(
            alice,
            "Holiday",
            "Plan a trip",
            "First we rest. " * 5 + "Day one: walk along the\nDanube embankment." + " Lunch." * 20,
        ),
        "title_only": chat(alice, "Saffron prices", "How much per gram?"),
        "deleted": chat(alice, "Old", "saffron again"),
        "bobs": chat(bob, "Bob's", "saffron for bob"),
    }


def ids(hits: list[search.Hit]) -> list[str]:
    return [hit.conversation.public_id for hit in hits]


def check_search(using: str) -> None:
    made = fill(using)
    Conversation.objects.db_manager(using).filter(pk=made["deleted"].pk).update(
        deleted_at=timezone.now()
    )
    alice = made["alice"]

    saffron = search.search(alice, "saffron", using=using)
    danube = search.search(alice, "Danube", using=using)

    # Message text and titles, only Alice's, never the deleted one; most recent first.
    assert sorted(ids(saffron)) == sorted([made["recipes"].public_id, made["title_only"].public_id])
    by_id = {hit.conversation.public_id: hit for hit in saffron}
    recipes = by_id[made["recipes"].public_id]
    assert recipes.snippet == "What goes with saffron?"
    assert recipes.highlight is not None
    start, end = recipes.highlight
    assert recipes.snippet[start:end] == "saffron"
    assert by_id[made["title_only"].public_id].highlight is None
    assert ids(danube) == [made["trip"].public_id]
    snippet = danube[0].snippet
    assert snippet.startswith("…") and snippet.endswith("…") and "\n" not in snippet
    assert "Danube" in snippet and len(snippet) < 200
    assert search.search(made["bob"], "saffron", using=using)[0].conversation.title == "Bob's"
    assert search.search(alice, "nothing-like-this", using=using) == []
    assert search.search(alice, "", using=using) == []


# --- SQLite (the suite's database): substring matches --------------------------------------------


@pytest.mark.django_db
def test_search_finds_message_text_on_sqlite() -> None:
    assert connections["default"].vendor == "sqlite"
    check_search("default")


@pytest.mark.django_db
def test_the_endpoint_answers_with_escaped_free_text(client: Client) -> None:
    alice = User.objects.create_user("alice", "", "pw")
    conversation = Conversation.objects.create(owner=alice, title="<b>bold</b>", next_seq=2)
    Message.objects.create(
        conversation=conversation, seq=1, role="user", content='<img src=x onerror="alert(1)">'
    )
    client.force_login(alice)

    answer = client.get("/api/conversations", {"q": "  img  "}).json()

    assert answer["query"] == "img"
    [result] = answer["results"]
    assert result["id"] == conversation.public_id
    assert result["title"] == "<b>bold</b>"  # text, for textContent: the page never parses it
    assert result["snippet"] == '<img src=x onerror="alert(1)">'
    assert result["highlight"] == [1, 4]
    assert (result["pinned"], result["archived"]) == (False, False)


@pytest.mark.django_db
def test_the_highlight_counts_as_javascript_does(client: Client) -> None:
    alice = User.objects.create_user("alice", "", "pw")
    conversation = Conversation.objects.create(owner=alice, title="emoji", next_seq=2)
    Message.objects.create(conversation=conversation, seq=1, role="user", content="🎉 party time")
    client.force_login(alice)

    [result] = client.get("/api/conversations", {"q": "party"}).json()["results"]

    # The emoji is one code point but two UTF-16 units, as String.prototype.slice counts.
    assert result["snippet"] == "🎉 party time"
    assert result["highlight"] == [3, 8]


def test_snippets_cut_around_the_first_match_on_one_line() -> None:
    text = "a" * 300 + "\n\nNeedle  in\tthe hay" + "b" * 300
    snippet, highlight = search.make_snippet(text, ["needle", "hay"])
    assert highlight is not None
    assert snippet[highlight[0] : highlight[1]] == "Needle"
    assert snippet.startswith("…") and snippet.endswith("…")
    assert " Needle in the hay" in snippet
    assert search.make_snippet("short", ["absent"]) == ("short", None)


def test_queries_are_normalised_and_bounded() -> None:
    assert search.clean_query("  two \n words ") == "two words"
    with pytest.raises(search.BadQuery, match="at most 200 characters"):
        search.clean_query("x" * 201)


# --- PostgreSQL: full-text search through the GIN index ------------------------------------------


@pytest.fixture
def pg_alias(django_db_blocker: Any) -> Iterator[str]:
    """A fresh PostgreSQL database, migrated, as an extra connection alias; dropped afterwards."""
    service_or_skip("PostgreSQL", 5432)
    import psycopg
    from psycopg import sql

    name = f"noboxweb_search_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    raw = {
        "default": dict(connections.settings["default"]),  # configure_settings insists on one
        PG_ALIAS: {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": "postgres",
            "HOST": "127.0.0.1",
            "PORT": "5432",
        },
    }
    connections.settings[PG_ALIAS] = connections.configure_settings(raw)[PG_ALIAS]
    try:
        with django_db_blocker.unblock():
            call_command("migrate", database=PG_ALIAS, verbosity=0)
            yield PG_ALIAS
            connections[PG_ALIAS].close()
    finally:
        del connections[PG_ALIAS]
        del connections.settings[PG_ALIAS]
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def test_search_finds_message_text_on_postgresql(pg_alias: str) -> None:
    check_search(pg_alias)
    # Whole words, websearch syntax: "-word" excludes, a quoted phrase must be there as such.
    alice = User.objects.db_manager(pg_alias).get(username="alice")
    assert [h.conversation.title for h in search.search(alice, "risotto", using=pg_alias)] == [
        "Dinner ideas"
    ]
    # Words of one message, all of them: "saffron" and "risotto" are in two different ones.
    assert search.search(alice, "saffron -goes", using=pg_alias) == []
    assert search.search(alice, "saffron risotto", using=pg_alias) == []
    assert len(search.search(alice, "goes SAFFRON", using=pg_alias)) == 1
    assert search.search(alice, '"paella risotto"', using=pg_alias) == []


def test_the_full_text_index_exists_and_is_used_on_postgresql(pg_alias: str) -> None:
    with connections[pg_alias].cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'chat_message_content_fts'"
        )
        [(definition,)] = cursor.fetchall()
        cursor.execute("SET enable_seqscan = off")
        # What chat.search.FullTextMatch writes, on an aliased table as in its subquery.
        cursor.execute(
            "EXPLAIN SELECT u0.id FROM chat_message u0 "
            "WHERE u0.content_search @@ websearch_to_tsquery('simple', %s)",
            ["saffron"],
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "USING gin (content_search)" in definition
    assert "chat_message_content_fts" in plan


def test_the_stored_words_follow_every_write_on_postgresql(pg_alias: str) -> None:
    """Checkpoints rewrite a streaming reply's text every second: search sees the latest."""
    made = fill(pg_alias)
    reply = Message.objects.db_manager(pg_alias).get(conversation=made["trip"], seq=2)
    Message.objects.db_manager(pg_alias).filter(pk=reply.pk).update(content="now about otters")

    assert ids(search.search(made["alice"], "otters", using=pg_alias)) == [made["trip"].public_id]
    assert search.search(made["alice"], "Danube", using=pg_alias) == []


def test_the_migration_is_reversible_on_postgresql(pg_alias: str) -> None:
    from django.db.migrations.loader import MigrationLoader

    node = ("chat", "0007_conversation_list")
    [parent] = MigrationLoader(connections[pg_alias]).graph.node_map[node].parents

    def column_and_index() -> list[int]:
        with connections[pg_alias].cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM information_schema.columns WHERE table_name = "
                "'chat_message' AND column_name = 'content_search' UNION ALL "
                "SELECT count(*) FROM pg_indexes WHERE indexname = 'chat_message_content_fts'"
            )
            return [row[0] for row in cursor.fetchall()]

    call_command("migrate", *parent.key, database=pg_alias, verbosity=0)
    assert column_and_index() == [0, 0]
    call_command("migrate", "chat", database=pg_alias, verbosity=0)
    assert column_and_index() == [1, 1]


def test_the_migration_makes_no_index_on_sqlite(db: Any) -> None:
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE name = 'chat_message_content_fts'")
        assert cursor.fetchall() == []
