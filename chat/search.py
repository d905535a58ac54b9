"""Search over a user's conversations: titles and message text.

On PostgreSQL message text is matched with full-text search: `websearch_to_tsquery('simple', q)`
against the stored `to_tsvector('simple', content)` column that migration 0006 adds, with its
GIN index (FullTextMatch writes it). The 'simple' configuration lowercases and splits words without
stemming or stop words, so it works for any language; it matches whole words, and every word of
the query must be in one message (websearch syntax: "a phrase", -excluded, or). Elsewhere
(SQLite) message text is matched as a case-insensitive substring (LIKE, ASCII letters only),
which scans the user's messages (bench/search.py has the figures for both). Titles are matched
as substrings everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connections
from django.db.models import BooleanField, Exists, F, Func, OuterRef, QuerySet, Value

from chat.models import Conversation, Message, MessageQuerySet, User

SEARCH_COLUMN = "content_search"  # PostgreSQL only: see migration 0006
MAX_QUERY_CHARS = 200
MAX_RESULTS = 30
# Characters of context kept before and after the match in a snippet.
SNIPPET_BEFORE = 40
SNIPPET_AFTER = 100


class FullTextMatch(Func):
    """`<table>.content_search @@ websearch_to_tsquery('simple', <query>)`, on the stored
    `to_tsvector('simple', content)` column and GIN index of migration 0006 (PostgreSQL only),
    under whatever alias the message table has (a correlated subquery here, which Django
    aliases). The column is not a model field, so it is named beside `content`."""

    output_field = BooleanField()

    def __init__(self, query: str) -> None:
        super().__init__(F("content"), Value(query))

    def as_sql(  # type: ignore[override]  # the arguments Func.as_sql has are not used here
        self, compiler: Any, connection: Any, **extra: Any
    ) -> tuple[str, list[Any]]:
        content, query = self.get_source_expressions()
        column = f"{compiler.quote_name_unless_alias(content.alias)}.{SEARCH_COLUMN}"
        query_sql, query_params = compiler.compile(query)
        return f"{column} @@ websearch_to_tsquery('simple', {query_sql})", list(query_params)


class BadQuery(ValueError):
    pass


@dataclass(frozen=True)
class Hit:
    conversation: Conversation
    snippet: str
    # Where the matched text is in `snippet` (start, end), for highlighting; None if not shown.
    highlight: tuple[int, int] | None


def clean_query(raw: str) -> str:
    query = " ".join(raw.split())
    if len(query) > MAX_QUERY_CHARS:
        raise BadQuery(f"Search for at most {MAX_QUERY_CHARS} characters.")
    return query


def search(
    user: User, query: str, *, using: str = "default", limit: int = MAX_RESULTS
) -> list[Hit]:
    """The user's live conversations whose title or messages match, most recent first, each
    with a snippet of the first matching message."""
    if not query:
        return []
    full_text = connections[using].vendor == "postgresql"
    by_messages = _conversations_with_matching_messages(user, query, using, full_text, limit)
    by_title = list(
        Conversation.objects.db_manager(using)
        .live()
        .filter(owner=user, title__icontains=query)
        .values_list("pk", "updated_at")[:limit]
    )
    ranked = sorted(dict(by_messages + by_title).items(), key=lambda item: item[1], reverse=True)[
        :limit
    ]
    pks = [pk for pk, _ in ranked]
    conversations = Conversation.objects.db_manager(using).in_bulk(pks)
    texts = _first_matching_texts(pks, query, using, full_text)
    terms = _terms(query, full_text)
    hits = []
    for pk in pks:
        snippet, highlight = make_snippet(texts.get(pk, ""), terms)
        hits.append(Hit(conversations[pk], snippet, highlight))
    return hits


def _matching_messages(query: str, using: str, full_text: bool) -> MessageQuerySet:
    messages = Message.objects.db_manager(using).all()
    if full_text:
        return messages.filter(FullTextMatch(query))
    return messages.filter(content__icontains=query)


def _conversations_with_matching_messages(
    user: User, query: str, using: str, full_text: bool, limit: int
) -> list[tuple[int, datetime]]:
    found = by_message_text(user, query, using, full_text)
    return list(found.values_list("pk", "updated_at")[:limit])


def by_message_text(user: User, query: str, using: str, full_text: bool) -> QuerySet[Conversation]:
    """The user's live conversations with a matching message, newest first: one query the planner
    can run both ways: for a common word, walk the conversations newest first and stop at the
    limit (each checked through its few messages); for a rare one, take the matching messages
    from the full-text index and join."""
    matching = _matching_messages(query, using, full_text).filter(conversation=OuterRef("pk"))
    return (
        Conversation.objects.db_manager(using)
        .live()
        .filter(Exists(matching), owner=user)
        .order_by("-updated_at")
    )


def _first_matching_texts(
    pks: list[int], query: str, using: str, full_text: bool
) -> dict[int, str]:
    texts: dict[int, str] = {}
    rows = (
        _matching_messages(query, using, full_text)
        .filter(conversation_id__in=pks)
        .order_by("conversation_id", "seq")
        .values_list("conversation_id", "content")
    )
    for pk, content in rows:
        texts.setdefault(pk, content)
    return texts


def _terms(query: str, full_text: bool) -> list[str]:
    """What to highlight: the whole query for a substring match; for full text, its words
    (without websearch syntax: quotes, `-excluded` words and `or`)."""
    if not full_text:
        return [query]
    words = re.findall(r'-?[^\s"]+', query)
    return [w for w in words if not w.startswith("-") and w.lower() != "or"]


def make_snippet(text: str, terms: list[str]) -> tuple[str, tuple[int, int] | None]:
    """A short piece of `text` around the first match of a term, on one line."""
    match = _first_match(text, terms)
    if match is None:
        return _one_line(text[: SNIPPET_BEFORE + SNIPPET_AFTER]), None
    start, end = max(0, match.start() - SNIPPET_BEFORE), min(len(text), match.end() + SNIPPET_AFTER)
    before = ("…" if start > 0 else "") + _one_line(text[start : match.start()])
    matched = _one_line(text[match.start() : match.end()])
    after = _one_line(text[match.end() : end]) + ("…" if end < len(text) else "")
    return before + matched + after, (len(before), len(before) + len(matched))


def _first_match(text: str, terms: list[str]) -> re.Match[str] | None:
    found = [m for t in terms if t and (m := re.search(re.escape(t), text, re.IGNORECASE))]
    return min(found, key=lambda m: m.start()) if found else None


def _one_line(text: str) -> str:
    # Whitespace runs become one space, keeping a single space at either end so the pieces join.
    return re.sub(r"\s+", " ", text)
