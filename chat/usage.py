"""Usage records: what each upstream call consumed and cost, written once with the reply's final
write (or by the sweep, for a reply whose process died), and the sums people and admins read.

When Nobox sends no `usage`, the counts are estimated from the text (docs/usage.md says how) and
the record is flagged `estimated`. A price Nobox did not give is unknown, never zero: the record's
cost stays NULL and reads "price unknown".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db.models import Count, Sum
from django.db.models.functions import Length
from django.utils import timezone

from chat import branches
from chat.models import Conversation, Message
from chat.models import Usage as UsageRecord
from chat.nobox import ModelInfo, Price, Usage

# About four characters of English per token (OpenAI's rule of thumb), a few tokens of chat
# framing per message, and a low-detail image's tile for each attachment.
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4
TOKENS_PER_ATTACHMENT = 85

CENT_FRACTIONS = Decimal("0.00000001")  # what Usage.cost keeps (8 decimal places)
MAX_COST = Decimal(10**6)  # what Usage.cost (14 digits, 8 after the point) can hold


@dataclass(frozen=True)
class Consumed:
    usage: Usage
    estimated: bool


def record_reply(reply: Message, reported: Usage | None, model: ModelInfo | None) -> UsageRecord:
    """Record (or correct) the usage of a finished reply, inside the caller's transaction: the
    reply's final write or the sweep. One row per reply: a late final write after a sweep
    replaces the sweep's estimate, it does not add to it."""
    return record_replies([(reply, reported, model)])[0]


def record_replies(
    replies: list[tuple[Message, Usage | None, ModelInfo | None]],
) -> list[UsageRecord]:
    """`record_reply` for several replies, in one statement."""
    records = [_record_of(reply, reported, model) for reply, reported, model in replies]
    # One statement (INSERT ... ON CONFLICT DO UPDATE) where update_or_create took a savepoint,
    # a locking read and a write per reply: this runs at the end of every reply.
    UsageRecord.objects.bulk_create(
        records, update_conflicts=True, unique_fields=["message"], update_fields=RECORD_FIELDS
    )
    return records


def _record_of(reply: Message, reported: Usage | None, model: ModelInfo | None) -> UsageRecord:
    consumed = consumed_by(reply, reported)
    pricing, price = _price_for(reply, model)
    conversation = reply.conversation
    return UsageRecord(
        message=reply,
        user_id=conversation.owner_id,
        user_name=conversation.owner.get_username(),
        conversation=conversation,
        kind=UsageRecord.Kind.REPLY,
        model=reply.model,
        token_source=reply.token_source,
        prompt_tokens=consumed.usage.prompt_tokens,
        completion_tokens=consumed.usage.completion_tokens,
        total_tokens=consumed.usage.total_tokens,
        estimated=consumed.estimated,
        pricing=pricing,
        prompt_price=price.prompt,
        completion_price=price.completion,
        cost=cost_of(price, consumed.usage),
        status=reply.status,
        started_at=reply.created_at,
        finished_at=reply.finished_at or reply.created_at,
    )


# What a later record of the same reply replaces (a final write after the sweep's estimate):
# every column but the row's id and the reply it is of (the conflict key), new ones included.
RECORD_FIELDS = [
    field.name for field in UsageRecord._meta.concrete_fields if field.name not in ("id", "message")
]


def record_call(
    conversation: Conversation,
    kind: str,
    model: str,
    token_source: str,
    reported: Usage | None,
    info: ModelInfo | None,
    started_at: datetime,
    text_in: str,
    text_out: str,
) -> UsageRecord:
    """Record an upstream call made on someone's behalf that is not a reply (a title): what it
    consumed (estimated from the texts without Nobox's count) at the price in force."""
    if reported is not None:
        consumed = Consumed(reported, estimated=False)
    else:
        prompt, completion = estimate_tokens(text_in), estimate_tokens(text_out)
        consumed = Consumed(Usage(prompt, completion, prompt + completion), estimated=True)
    price = info.price if info is not None else Price(None, None)
    return UsageRecord.objects.create(
        user_id=conversation.owner_id,
        user_name=conversation.owner.get_username(),
        conversation=conversation,
        kind=kind,
        model=model,
        token_source=token_source,
        prompt_tokens=consumed.usage.prompt_tokens,
        completion_tokens=consumed.usage.completion_tokens,
        total_tokens=consumed.usage.total_tokens,
        estimated=consumed.estimated,
        pricing=_storable(info.pricing) if info is not None else None,
        prompt_price=price.prompt,
        completion_price=price.completion,
        cost=cost_of(price, consumed.usage),
        status="complete",
        started_at=started_at,
        finished_at=timezone.now(),
    )


def consumed_by(reply: Message, reported: Usage | None) -> Consumed:
    """What the call consumed: Nobox's own count, or an estimate from the text."""
    if reported is not None:
        return Consumed(reported, estimated=False)
    if reply.status == Message.Status.ERROR and not reply.content:
        # Refused or failed before the model wrote anything: nothing to bill for.
        return Consumed(Usage(0, 0, 0), estimated=True)
    prompt = estimate_prompt_tokens(reply)
    completion = estimate_tokens(reply.content)
    return Consumed(Usage(prompt, completion, prompt + completion), estimated=True)


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def estimate_prompt_tokens(reply: Message) -> int:
    """The prompt the reply was asked with: the system prompt and the finished messages of its
    branch before it (other versions were never sent; chat.replies.turns builds the same)."""
    earlier = Message.objects.filter(conversation_id=reply.conversation_id, seq__lt=reply.seq)
    earlier = earlier.exclude(status=Message.Status.STREAMING)
    tree = branches.load(reply.conversation)
    if tree is not None:
        earlier = earlier.filter(seq__in=tree.path(reply.seq))
    sums = earlier.aggregate(chars=Sum(Length("content")), messages=Count("pk"))
    attachments = sum(
        len(parts)
        for parts in earlier.exclude(attachments=[]).values_list("attachments", flat=True)
    )
    system = reply.conversation.system_prompt
    chars = (sums["chars"] or 0) + len(system)
    messages = (sums["messages"] or 0) + (1 if system else 0)
    return (
        math.ceil(chars / CHARS_PER_TOKEN)
        + messages * TOKENS_PER_MESSAGE
        + attachments * TOKENS_PER_ATTACHMENT
    )


def cost_of(price: Price, usage: Usage) -> Decimal | None:
    cost = price.cost(usage)
    if cost is None or cost >= MAX_COST:
        return None
    return cost.quantize(CENT_FRACTIONS, rounding=ROUND_HALF_UP)


def _price_for(reply: Message, model: ModelInfo | None) -> tuple[Any, Price]:
    """The price in force: the one the generation read from the catalogue; for a reply whose
    process died before it could say (swept), the price last recorded for the same model."""
    if model is not None:
        return _storable(model.pricing), model.price
    last = (
        UsageRecord.objects.filter(model=reply.model, prompt_price__isnull=False)
        .exclude(message=reply)
        .order_by("-finished_at", "-pk")
        .values_list("pricing", "prompt_price", "completion_price")
        .first()
    )
    if last is None:
        return None, Price(None, None)
    return last[0], Price(last[1], last[2])


def _storable(pricing: Any) -> Any:
    return pricing if isinstance(pricing, dict | list | str) else None


# --- sums --------------------------------------------------------------------------------------
