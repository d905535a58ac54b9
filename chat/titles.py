"""Automatic titles: after a conversation's first reply, one short non-streaming call names it.

The call runs on `TITLE_MODEL` (the admin's choice; empty: the conversation's own model), on the
token that paid for the reply, and is recorded as usage like any call. It only ever replaces the
fallback title (the first line of the first message): a chat the person renamed meanwhile keeps
their name. Any failure keeps the fallback and tells nobody but the log.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from chat import tokens, usage
from chat.database import in_db_pool
from chat.models import Conversation, Message
from chat.nobox import ChatRequest, ModelInfo, NoboxError, Usage
from chat.replies import events
from chat.replies.hub import Hub
from chat.replies.turns import fallback_title
from chat.upstream import model_info, nobox_client

log = logging.getLogger(__name__)

TITLE_CHARS = 80
OFF = "off"  # TITLE_MODEL=off: no title calls, chats keep their first words
INSTRUCTION = (
    "Write a title of at most six words for the conversation that follows. Answer with the "
    "title only: no quotes, no full stop."
)
# How much of the first exchange the title call sees (it pays for every character).
EXCERPT_CHARS = 1500

# Strong references to running title calls: asyncio keeps only weak ones.
_running: set[asyncio.Task[None]] = set()


@dataclass(frozen=True)
class FirstExchange:
    conversation: Conversation
    question: str
    answer: str


def start(hub: Hub, reply: Message, token: tokens.UsableToken) -> None:
    """Name the conversation if `reply` just finished its first exchange (called after `done`)."""
    if settings.TITLE_MODEL == OFF:
        return
    if reply.seq != 2 or reply.status not in (Message.Status.COMPLETE, Message.Status.TRUNCATED):
        return
    task = asyncio.create_task(_name(hub, reply.conversation_id, token), name="title")
    _running.add(task)
    task.add_done_callback(_running.discard)


async def _name(hub: Hub, conversation_pk: int, token: tokens.UsableToken) -> None:
    exchange = await _first_exchange(conversation_pk)
    if exchange is None:
        return
    model = settings.TITLE_MODEL or exchange.conversation.model
    prompt = f"{exchange.question[:EXCERPT_CHARS]}\n\n---\n\n{exchange.answer[:EXCERPT_CHARS]}"
    request = ChatRequest(
        model=model,
        messages=[{"role": "system", "content": INSTRUCTION}, {"role": "user", "content": prompt}],
        temperature=0.2,
        max_tokens=24,
    )
    started = timezone.now()
    try:
        completion = await nobox_client().complete(token.token, request)
    except NoboxError as error:
        log.info("no title for conversation %s: %s", conversation_pk, error.code)
        return
    info = await model_info(token.token, model)
    title = clean(completion.text)
    saved = await _save(exchange, title, model, token.source, completion.usage, info, started)
    if saved:
        public_id = exchange.conversation.public_id
        hub.publish(public_id, events.titled(public_id, title))


def clean(text: str) -> str:
    """A title from a model's answer: its first line, without quotes, markup or a full stop."""
    line = next((line for line in text.splitlines() if line.strip()), "")
    line = re.sub(r"^(title\s*:\s*)", "", line.strip(), flags=re.IGNORECASE)
    line = line.strip(" \t\"'“”‘’*#`_").rstrip(".")
    return " ".join(line.split())[:TITLE_CHARS]


@in_db_pool
def _first_exchange(conversation_pk: int) -> FirstExchange | None:
    conversation = Conversation.objects.select_related("owner").filter(pk=conversation_pk).first()
    first = list(conversation.messages.order_by("seq")[:2]) if conversation else []
    if conversation is None or len(first) < 2:
        return None
    if conversation.title != fallback_title(first[0].content):
        return None  # renamed by the person: theirs stands
    return FirstExchange(conversation, first[0].content, first[1].content)


@in_db_pool
def _save(
    exchange: FirstExchange,
    title: str,
    model: str,
    token_source: str,
    reported: Usage | None,
    info: ModelInfo | None,
    started: datetime,
) -> bool:
    """Record the call (it was made, whatever came of it) and set the title if it is still the
    fallback; True when the title changed."""
    conversation = exchange.conversation
    usage.record_call(
        conversation,
        "title",
        model,
        token_source,
        reported,
        info,
        started,
        exchange.question[:EXCERPT_CHARS] + exchange.answer[:EXCERPT_CHARS],
        title,
    )
    if not title:
        return False
    fallback = fallback_title(exchange.question)
    changed = Conversation.objects.filter(pk=conversation.pk, title=fallback).update(title=title)
    return changed > 0
