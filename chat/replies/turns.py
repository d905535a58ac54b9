"""Storing a turn: validate a `send`, then in one transaction store the user's message and a
streaming placeholder for the reply, and build the prompt. Nothing reaches Nobox before this."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction

from chat import budgets, rate_limits, tokens
from chat.access import NotFound, conversation_for
from chat.incoming_frames import SendRequest
from chat.models import Conversation, Message, NoboxToken, User
from chat.nobox import ChatRequest


class Refused(Exception):
    """A request the workflow will not carry out; `code` is part of the protocol."""

    def __init__(self, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after  # seconds, when trying again later will work


BUSY = ("busy", "A reply is still being written in this conversation.")


@dataclass
class Turn:
    """A stored turn. A fresh one (not `duplicate`) carries what its generation needs."""

    conversation: Conversation
    user_message: Message
    reply: Message
    duplicate: bool
    request: ChatRequest | None = None
    token: tokens.UsableToken | None = None


def store_turn(user: User, req: SendRequest) -> Turn:
    """Validate and store a `send`; raise Refused when it cannot be accepted.

    A resent frame (same client_id, from any tab or process, for a new chat or an existing one)
    returns the stored turn with duplicate=True: never a second message or upstream call.
    """
    existing = _find_sent(user, req.client_id)
    if existing is not None:
        return existing
    token = _usable_token(user)
    try:
        with transaction.atomic():
            _within_limits(user, req.client_id)
            conversation = _locked_conversation(user, req)
            # No checks for a twin or a running reply here: the unique indexes on (author,
            # client_id) and on one streaming reply per conversation refuse the insert, and
            # which of the two it was is told apart below, after the rollback.
            _apply_settings(conversation, req)
            user_message, reply = conversation.add_turn(
                user, req.text, req.attachments, req.client_id, token.source
            )
            NoboxToken.objects.filter(pk=token.record_pk).update(
                last_used_at=user_message.created_at
            )
            request = ChatRequest(
                model=conversation.model,
                messages=prompt_for(conversation),
                temperature=conversation.temperature,
                max_tokens=conversation.max_tokens,
            )
    except IntegrityError as exc:
        # A twin stored the same client_id (the unique index made us wait for it), or a reply
        # is still running in this conversation.
        existing = _find_sent(user, req.client_id)
        if existing is not None:
            return existing
        raise Refused(*BUSY) from exc
    return Turn(conversation, user_message, reply, False, request, token)


def _within_limits(user: User, client_id: str) -> None:
    """The person's budget and rate limits, decided with their row locked until the turn is
    stored: two sends at once, from any processes, cannot both take the last cent or the last
    slot (chat.budgets, chat.rate_limits)."""
    person = budgets.lock_person(user)
    try:
        budgets.check(person)
        rate_limits.check(person, client_id)
    except budgets.OverBudget as over:
        raise Refused(over.code, over.message) from over
    except rate_limits.RateLimited as limited:
        raise Refused(limited.code, limited.message, limited.retry_after) from limited


def _find_sent(user: User, client_id: str) -> Turn | None:
    sent = (
        Message.objects.filter(author=user, client_id=client_id)
        .select_related("conversation")
        .first()
    )
    if sent is None:
        return None
    reply = sent.conversation.messages.filter(seq=sent.seq + 1).first()
    if reply is None:
        return None
    return Turn(sent.conversation, sent, reply, duplicate=True)


def _usable_token(user: User) -> tokens.UsableToken:
    # Expired, revoked, rejected or unreadable tokens stop here, before anything is stored or
    # sent, with a message that says how to fix it.
    try:
        return tokens.resolve(user)
    except tokens.TokenProblem as problem:
        raise Refused(problem.code, problem.message) from problem


def _locked_conversation(user: User, req: SendRequest) -> Conversation:
    if req.conversation_id is None:
        return Conversation.objects.create(owner=user, title=_title_from(req.text))
    try:
        conversation = conversation_for(user, req.conversation_id)
    except NotFound as exc:
        raise Refused("not_found", "No such conversation.") from exc
    # The row lock serialises concurrent sends to one conversation (PostgreSQL); SQLite's
    # IMMEDIATE transactions already serialise all writers.
    return Conversation.objects.select_for_update().get(pk=conversation.pk)


def _title_from(text: str) -> str:
    line = " ".join(text.split())
    return line[:80] if line else "Attachment"


def _apply_settings(conversation: Conversation, req: SendRequest) -> None:
    conversation.model = req.model
    if req.system_prompt is not None:
        conversation.system_prompt = req.system_prompt
    conversation.temperature = req.temperature
    conversation.max_tokens = req.max_tokens


def prompt_for(conversation: Conversation) -> list[dict[str, Any]]:
    """The conversation in OpenAI wire format: system prompt, then every kept turn."""
    messages: list[dict[str, Any]] = []
    if conversation.system_prompt:
        messages.append({"role": "system", "content": conversation.system_prompt})
    for message in conversation.messages.exclude(status=Message.Status.STREAMING).order_by("seq"):
        if message.role == Message.Role.ASSISTANT and not message.content:
            continue  # a failed reply with no text says nothing to the model
        messages.append({"role": message.role, "content": _wire_content(message)})
    return messages


def _wire_content(message: Message) -> str | list[dict[str, Any]]:
    if not message.attachments:
        return message.content
    parts: list[dict[str, Any]] = []
    if message.content:
        parts.append({"type": "text", "text": message.content})
    parts.extend(message.attachments)
    return parts
