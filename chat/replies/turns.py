"""Storing a turn: validate a `send`, then in one transaction store the user's message and a
streaming placeholder for the reply, and build the prompt. Nothing reaches Nobox before this."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django_stubs_ext import StrOrPromise

from chat import attachments, branches, limits, tokens
from chat.incoming_frames import SendRequest
from chat.models import Attachment, Conversation, Message, NoboxToken, User, WireMessage
from chat.nobox import ChatRequest


class Refused(Exception):
    """A request the workflow will not carry out; `code` is part of the protocol."""

    def __init__(self, code: str, message: StrOrPromise, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after  # seconds, when trying again later will work


NO_SUCH_CONVERSATION = _("No such conversation.")
# What building a prompt reads of the earlier messages (their place in the tree, their words
# and files): a chat's whole history is read per send, and its other columns are dead weight.
PROMPT_FIELDS = (
    "conversation_id",
    "seq",
    "parent_seq",
    "public_id",
    "role",
    "status",
    "content",
    "attachments",
)
BUSY = ("busy", _("A reply is still being written in this conversation."))
NO_MESSAGE = ("not_found", _("No such message in this conversation."))


@dataclass
class Turn:
    """A stored turn: a user message and the reply to it, or (regenerate) only a new version
    of a reply. A fresh one (not `duplicate`) carries what its generation needs."""

    conversation: Conversation
    user_message: Message
    reply: Message
    duplicate: bool
    request: ChatRequest | None = None
    token: tokens.UsableToken | None = None
    # What the page is sent of the turn (`ack`, `messages`), with their versions, and `base`:
    # the seq of the message the first of them follows (docs/protocol.md, *Branches*).
    shown: list[WireMessage] | None = None
    base: int = 0


def store_turn(user: User, req: SendRequest) -> Turn:
    """Validate and store a `send`; raise Refused when it cannot be accepted.

    A resent frame (same client_id, from any tab or process, for a new chat or an existing one)
    returns the stored turn with duplicate=True: never a second message or upstream call.
    """
    existing = _find_sent(user, req.client_id)
    if existing is not None:
        return existing
    token = _usable_token(user)
    # The files are written first and named by the rows; if the rows do not land, nothing
    # is left behind.
    files = _unsaved_files(req.attachments)
    try:
        with transaction.atomic():
            _within_limits(user, req.client_id)
            conversation = _locked_conversation(user, req)
            new_chat = conversation._state.adding  # inserted with its first turn
            # No checks for a twin or a running reply here: the unique indexes on (author,
            # client_id) and on one streaming reply per conversation refuse the insert, and
            # which of the two it was is told apart below, after the rollback.
            _apply_settings(conversation, req)
            user_message, reply = _add(conversation, user, req, token, files)
            if token.use_worth_recording(reply.created_at):
                NoboxToken.objects.filter(pk=token.record_pk).update(last_used_at=reply.created_at)
            tree = branches.load(conversation)
            history = [user_message] if new_chat else _on_branch(conversation, tree, user_message)
            request = _chat_request(conversation, history)
    except IntegrityError as exc:
        attachments.discard(f.stored_name for f in files)
        # A twin stored the same client_id (the unique index made us wait for it), or a reply
        # is still running in this conversation.
        existing = _find_sent(user, req.client_id)
        if existing is not None:
            return existing
        raise Refused(*BUSY) from exc
    except BaseException:
        attachments.discard(f.stored_name for f in files)
        raise
    return _shown(Turn(conversation, user_message, reply, False, request, token), tree)


def _add(
    conversation: Conversation,
    user: User,
    req: SendRequest,
    token: tokens.UsableToken,
    files: list[Attachment],
) -> tuple[Message, Message]:
    """Store the turn where the request puts it in the conversation's tree. An edit's copies of
    the edited message's files join `files` (so they are removed if the turn does not land)."""
    parent_seq = conversation.visible_leaf
    if req.parent_id:
        parent_seq = _message_in(conversation, req.parent_id).seq
    if parent_seq != conversation.visible_leaf or req.edit_id or req.regenerate_id:
        conversation.branched = True  # a second version of something: saved with the turn
    if req.regenerate_id:
        earlier = _message_in(conversation, req.regenerate_id, Message.Role.ASSISTANT)
        question = branches.tree_of(conversation).parent[earlier.seq] or 0
        # An imported file may start with a reply, or put one after another: no question.
        user_message = conversation.messages.filter(seq=question, role=Message.Role.USER).first()
        if user_message is None:
            raise Refused(*NO_MESSAGE)
        reply = conversation.add_reply(user, req.client_id, token.source, question)
        return user_message, reply
    if req.edit_id:
        edited = _message_in(conversation, req.edit_id, Message.Role.USER)
        parent_seq = branches.tree_of(conversation).parent[edited.seq] or 0
        files.extend(attachments.copies(edited.files.all()))
    return conversation.add_turn(user, req.text, files, req.client_id, token.source, parent_seq)


def _message_in(conversation: Conversation, public_id: str, role: str | None = None) -> Message:
    found = conversation.messages.filter(public_id=public_id)
    message = (found.filter(role=role) if role else found).first()
    if message is None:
        raise Refused(*NO_MESSAGE)
    return message


def _on_branch(
    conversation: Conversation, tree: branches.Tree | None, last: Message
) -> list[Message]:
    """The finished messages of the branch that ends at `last`: the prompt's turns."""
    kept = conversation.messages.exclude(status=Message.Status.STREAMING).only(*PROMPT_FIELDS)
    if tree is not None:
        kept = kept.filter(seq__in=tree.path(last.seq))
    return attachments.with_files(list(kept.order_by("seq")))


def _shown(turn: Turn, tree: branches.Tree | None) -> Turn:
    """`turn` with what the page is shown of it: a regenerated reply alone (its user message
    is already on the page), else both messages."""
    regenerated = turn.reply.client_id is not None
    shown = [turn.reply] if regenerated else [turn.user_message, turn.reply]
    turn.shown = branches.wire(shown, tree)
    turn.base = branches.base_of(shown[0], tree)
    return turn


def _unsaved_files(uploads: list[attachments.Upload]) -> list[Attachment]:
    return attachments.rows_for(uploads, attachments.save_files(uploads))


def _within_limits(user: User, client_id: str) -> None:
    """The person's budget and rate limits, decided with their row locked until the turn is
    stored: two sends at once, from any processes, cannot both take the last cent or the last
    slot (chat.limits)."""
    refusal = limits.Quota([user]).refusal(user, client_id)
    if refusal is not None:
        raise Refused(refusal.code, refusal.message, refusal.retry_after)


def store_turns(sends: Sequence[tuple[User, SendRequest]]) -> list[Turn | Refused]:
    """Store sends that arrived together: the plain ones in one transaction (group commit: one
    commit and a handful of statements for all of them), then every other one by `store_turn`.

    "Plain" means no stored twin, no twin in the group, a usable token, an existing or new
    conversation that no other send of the group names and that has no running reply: exactly
    the cases `store_turn` would accept. The rest (refusals, duplicates) are left to
    `store_turn`, which answers them after the group committed, so a second send to the same
    conversation in one group is `busy`, as it would be one by one. A conflict the group cannot
    see (a twin or a reply started by another process meanwhile, a deadlock) rolls the group
    back and every send goes one by one.
    """
    together: dict[int, Turn] = {}
    if len(sends) > 1:
        try:
            with transaction.atomic():
                together = _store_plain(sends)
        except DatabaseError:
            together = {}
    return [
        together[index] if index in together else _store_or_refusal(user, req)
        for index, (user, req) in enumerate(sends)
    ]


def _store_or_refusal(user: User, req: SendRequest) -> Turn | Refused:
    try:
        return store_turn(user, req)
    except Refused as refused:
        return refused


def _store_plain(sends: Sequence[tuple[User, SendRequest]]) -> dict[int, Turn]:
    """Store the plain sends of a group (see `store_turns`) under the caller's transaction."""
    usable = tokens.usable_tokens([user for user, _ in sends])
    # Budgets and rate limits: the people first (locked), then their conversations.
    quota = limits.Quota([user for user, _ in sends])
    plain = _plain_sends(sends, usable, quota)
    rows: list[Message] = []
    turns: dict[int, tuple[Message, Message]] = {}
    now = timezone.now()  # one time for the group: alike conversations share one UPDATE
    for index, conversation in plain.items():
        user, req = sends[index]
        _apply_settings(conversation, req)
        turns[index] = conversation.next_turn(
            user, req.text, req.client_id, usable[user.pk].source, conversation.visible_leaf, now
        )
        rows.extend(turns[index])
    # New chats are inserted with their turn's fields already set (the messages pick up their
    # pks on insert); existing ones are updated together.
    new = [c for c in plain.values() if c._state.adding]
    existing = [c for c in plain.values() if not c._state.adding]
    Conversation.objects.bulk_create(new)
    Message.objects.bulk_create(rows)
    Conversation.objects.save_turns(existing)
    used = {usable[sends[index][0].pk] for index in plain}
    stale = [token.record_pk for token in used if token.use_worth_recording(now)]
    if stale:
        NoboxToken.objects.filter(pk__in=stale).update(last_used_at=now)
    # A new chat's history is the turn just stored: only the others are read back.
    stored = _messages_of([conversation.pk for conversation in existing])
    for index, conversation in plain.items():
        if conversation in new:
            stored[conversation.pk] = list(turns[index])
    fresh: dict[int, Turn] = {}
    for index, conversation in plain.items():
        user_message, reply = turns[index]
        rows = stored[conversation.pk]
        tree = None
        if conversation.branched:
            tree = branches.Tree(((m.seq, m.parent_seq, m.public_id) for m in rows), None)
            on_branch = set(tree.path(user_message.seq))
            rows = [m for m in rows if m.seq in on_branch]
        kept = [m for m in rows if m.status != Message.Status.STREAMING]
        turn = Turn(
            conversation,
            user_message,
            reply,
            duplicate=False,
            request=_chat_request(conversation, kept),
            token=usable[sends[index][0].pk],
        )
        fresh[index] = _shown(turn, tree)
    return fresh


def _plain_sends(
    sends: Sequence[tuple[User, SendRequest]],
    usable: dict[int, tokens.UsableToken],
    quota: limits.Quota,
) -> dict[int, Conversation]:
    """The plain sends of a group (see `store_turns`), each with its (new or locked) chat."""
    stored = _stored_keys(sends)
    named = _lockable_conversations(sends)
    leaves = _leaf_ids(list(named.values()))
    plain: dict[int, Conversation] = {}
    seen_keys: set[tuple[int, str]] = set()
    for index, (user, req) in enumerate(sends):
        key = (user.pk, req.client_id)
        if key in stored or key in seen_keys or user.pk not in usable:
            continue
        if req.attachments or req.edit_id or req.regenerate_id:
            # Sends with files go one by one: their files are written first, and removed if
            # their rows do not land. So do new versions (edit, regenerate).
            continue
        if req.conversation_id is None:
            conversation = _new_conversation(user, req)
        elif (user.pk, req.conversation_id) in named:
            conversation = named[(user.pk, req.conversation_id)]
            if req.parent_id and leaves.get(conversation.pk) != req.parent_id:
                continue  # after another message than the visible branch's last: one by one
            # Taken: a second send to the same chat goes one by one, after this one (busy).
            del named[(user.pk, req.conversation_id)]
        else:
            continue
        if not quota.admits(user, req.client_id):
            continue  # over a limit: refused one by one, with the reason
        plain[index] = conversation
        seen_keys.add(key)
    return plain


def _leaf_ids(conversations: list[Conversation]) -> dict[int, str]:
    """The id of the last message of each conversation's visible branch, by conversation pk
    (a page's `send` names it as its `parent`)."""
    if not conversations:
        return {}
    leaf = {c.pk: c.visible_leaf for c in conversations}
    rows = Message.objects.filter(conversation__in=conversations, seq__in=set(leaf.values()))
    return {
        pk: public_id
        for pk, seq, public_id in rows.values_list("conversation_id", "seq", "public_id")
        if leaf[pk] == seq
    }


def _stored_keys(sends: Sequence[tuple[User, SendRequest]]) -> set[tuple[int, str | None]]:
    """The (author, client_id) pairs of the group already stored: resent frames."""
    return set(
        Message.objects.filter(
            author__in=[user for user, _ in sends],
            client_id__in=[req.client_id for _, req in sends],
        ).values_list("author_id", "client_id")
    )


def _lockable_conversations(
    sends: Sequence[tuple[User, SendRequest]],
) -> dict[tuple[int, str], Conversation]:
    """The existing conversations the group names that have no running reply, by (owner pk,
    public id), row-locked in pk order (so two processes' groups cannot deadlock)."""
    named = {(user.pk, req.conversation_id) for user, req in sends if req.conversation_id}
    if not named:
        return {}
    found = (
        Conversation.objects.live()
        .select_for_update(no_key=True)
        .filter(public_id__in=[public_id for _, public_id in named])
        .order_by("pk")
    )
    owned = {(c.owner_id, c.public_id): c for c in found if (c.owner_id, c.public_id) in named}
    busy = _busy(list(owned.values()))
    return {key: c for key, c in owned.items() if c.pk not in busy}


def _busy(conversations: list[Conversation]) -> set[int]:
    """The pks of those conversations where a reply is running."""
    running = Message.objects.streaming().filter(conversation__in=conversations)
    return set(running.values_list("conversation_id", flat=True))


def _new_conversation(user: User, req: SendRequest) -> Conversation:
    return Conversation(owner=user, title=fallback_title(req.text))


def _messages_of(conversation_pks: list[int]) -> dict[int, list[Message]]:
    found: dict[int, list[Message]] = defaultdict(list)
    rows = Message.objects.filter(conversation__in=conversation_pks).only(*PROMPT_FIELDS)
    rows = rows.order_by("conversation", "seq")
    for message in attachments.with_files(list(rows)):
        found[message.conversation_id].append(message)
    return found


def _chat_request(conversation: Conversation, kept: list[Message]) -> ChatRequest:
    return ChatRequest(
        model=conversation.model,
        messages=_prompt(conversation, kept),
        temperature=conversation.temperature,
        max_tokens=conversation.max_tokens,
    )


def _find_sent(user: User, client_id: str) -> Turn | None:
    # Asked of every send, and nearly always answered "no": the probe reads one column; only a
    # resent frame reads the message with its conversation.
    probe = Message.objects.filter(author=user, client_id=client_id).values_list("pk", flat=True)
    sent_pk = probe.first()
    sent = (
        Message.objects.select_related("conversation").filter(pk=sent_pk).first()
        if sent_pk is not None
        else None
    )
    if sent is None:  # never stored, or purged since the probe
        return None
    if sent.conversation.deleted_at is not None:
        # Resent after its chat was deleted: the chat is gone for this user.
        raise Refused("not_found", NO_SUCH_CONVERSATION)
    tree = branches.load(sent.conversation)
    if sent.role == Message.Role.ASSISTANT:  # a regenerated reply: its parent is written
        user_message = sent.conversation.messages.get(seq=sent.parent_seq or 0)
        reply = sent
    else:
        found = sent.conversation.messages.filter(seq=sent.seq + 1).first()
        if found is None:
            return None
        user_message, reply = sent, found
    return _shown(Turn(sent.conversation, user_message, reply, duplicate=True), tree)


def _usable_token(user: User) -> tokens.UsableToken:
    # Expired, revoked, rejected or unreadable tokens stop here, before anything is stored or
    # sent, with a message that says how to fix it.
    try:
        return tokens.resolve(user)
    except tokens.TokenProblem as problem:
        raise Refused(problem.code, problem.message) from problem


def _locked_conversation(user: User, req: SendRequest) -> Conversation:
    if req.conversation_id is None:
        return _new_conversation(user, req)  # saved with its first turn (`add_turn`)
    # Found and locked in one statement, the owner's only. The row lock serialises concurrent
    # sends to one conversation (PostgreSQL); SQLite's IMMEDIATE transactions already serialise
    # all writers.
    try:
        return (
            Conversation.objects.live()
            .select_for_update(no_key=True)
            .get(public_id=req.conversation_id, owner=user)
        )
    except Conversation.DoesNotExist as exc:
        raise Refused("not_found", NO_SUCH_CONVERSATION) from exc


def fallback_title(text: str) -> str:
    """The title a new chat starts with (its first message's first words), until chat.titles
    names it."""
    line = " ".join(text.split())
    return line[:80] if line else gettext("Attachment")


def _apply_settings(conversation: Conversation, req: SendRequest) -> None:
    if req.model:  # a regenerate without a model keeps the conversation's
        conversation.model = req.model
    if req.system_prompt is not None:
        conversation.system_prompt = req.system_prompt
    conversation.temperature = req.temperature
    conversation.max_tokens = req.max_tokens


def _prompt(conversation: Conversation, kept: Iterable[Message]) -> list[dict[str, Any]]:
    """The conversation in OpenAI wire format: system prompt, then every kept turn."""
    messages: list[dict[str, Any]] = []
    if conversation.system_prompt:
        messages.append({"role": "system", "content": conversation.system_prompt})
    for message in kept:
        if message.role == Message.Role.ASSISTANT and not message.content:
            continue  # a failed reply with no text says nothing to the model
        messages.append({"role": message.role, "content": _wire_content(message)})
    return messages


def _wire_content(message: Message) -> str | list[dict[str, Any]]:
    """The message's content; with files, a list of parts: its text, then each file read back
    from storage (only here, where the request to Nobox is built)."""
    if not message.attachments:
        return message.content
    parts: list[dict[str, Any]] = []
    if message.content:
        parts.append({"type": "text", "text": message.content})
    for file in message.files.all():
        data = attachments.read(file.stored_name)
        parts.append(
            attachments.content_part(
                file.kind, file.audio_format, file.content_type, file.name, data
            )
        )
    return parts
