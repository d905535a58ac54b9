"""Shared conversation links: create, revoke, what a viewer sees, and continuing a shared
conversation in one's own account. Views, the viewer socket and the admin call these.

A link's token is 256 random bits (`secrets.token_urlsafe(32)`), shown to its owner once and
stored only as its SHA-256: a leaked database opens no link.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django_stubs_ext import StrOrPromise

from chat import attachments, audit, branches
from chat.models import (
    Attachment,
    AuditEvent,
    Conversation,
    Message,
    ShareLink,
    ShareSettings,
    User,
    WireMessage,
    share_token_hash,
)
from chat.replies import events
from chat.replies.hub import tell_from_thread

# What the owner may choose as a lifetime (form value -> duration; "" never expires).
EXPIRY_CHOICES: dict[str, tuple[StrOrPromise, timedelta | None]] = {
    "": (_("Never"), None),
    "1h": (_("In 1 hour"), timedelta(hours=1)),
    "1d": (_("In 1 day"), timedelta(days=1)),
    "7d": (_("In 7 days"), timedelta(days=7)),
    "30d": (_("In 30 days"), timedelta(days=30)),
}

# What a viewer reads instead of the reply's own error sentence, which may speak of the owner's
# token or account ("open Settings", "insufficient funds").
SHARED_ERROR_MESSAGE = _("This reply failed before it was finished.")


def new_token() -> str:
    """256 bits from the operating system's CSPRNG, URL-safe (43 characters)."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class NewLink:
    link: ShareLink
    token: str  # shown to the owner once; never stored


def create_link(
    owner: User,
    conversation: Conversation,
    *,
    kind: str,
    expires_in: timedelta | None,
    show_owner_name: bool,
    show_cost: bool,
    request: HttpRequest | None = None,
) -> NewLink:
    """A new link to `conversation` (which the caller checked `owner` owns), audited."""
    with transaction.atomic():
        made = new_link(owner, conversation, kind=kind, expires_in=expires_in)
        link = made.link
        link.show_owner_name = show_owner_name
        link.show_cost = show_cost
        if kind == ShareLink.Kind.SNAPSHOT:
            link.snapshot_seq = _snapshot_seq(conversation)
        link.save()
        audit.record(
            AuditEvent.Action.SHARE_CREATED,
            actor=owner,
            target=owner,
            detail=f"{link.get_kind_display()} link {link.public_id} to conversation "
            f"{conversation.public_id}",
            request=request,
        )
    return made


def new_link(
    owner: User, conversation: Conversation, *, kind: str, expires_in: timedelta | None = None
) -> NewLink:
    """A link not saved yet, with its token: the only place a token is made."""
    token = new_token()
    now = timezone.now()
    link = ShareLink(
        conversation=conversation,
        owner=owner,
        kind=kind,
        token_hash=share_token_hash(token),
        created_at=now,
        expires_at=now + expires_in if expires_in is not None else None,
    )
    return NewLink(link, token)


def _snapshot_seq(conversation: Conversation) -> int:
    """The last message a snapshot shows: the branch the owner sees now, except a turn still
    being written (its question and its unfinished reply), whose text would keep changing."""
    # The conversation's row lock orders this against a turn being stored at the same moment.
    locked = Conversation.objects.select_for_update().get(pk=conversation.pk)
    tree = branches.tree_of(locked)
    streaming = locked.messages.streaming().values_list("seq", flat=True).first()
    if streaming is None:
        return tree.leaf or 0
    question = tree.parent[streaming]
    return (tree.parent[question] if question is not None else None) or 0


def revoke_link(link: ShareLink, actor: User | None, request: HttpRequest | None = None) -> bool:
    """Revoke `link` (audited) and close its open viewers in every process. False if it was
    already revoked."""
    with transaction.atomic():
        revoked = ShareLink.objects.filter(pk=link.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if not revoked:
            return False
        audit.record(
            AuditEvent.Action.SHARE_REVOKED,
            actor=actor,
            target=link.owner,
            detail=f"{link.get_kind_display()} link {link.public_id} to conversation "
            f"{link.conversation.public_id}",
            request=request,
        )
        # Told once the revocation is committed: a viewer that reconnects must find it.
        transaction.on_commit(lambda: close_viewers(link.token_hash))
    return True


def close_viewers(token_hash: str) -> None:
    tell_from_thread(events.share_channel(token_hash), events.share_closed())


@receiver(post_delete, sender=ShareLink)
def _close_viewers_of_a_deleted_link(
    sender: type[ShareLink], instance: ShareLink, **_: Any
) -> None:
    # Deleting a conversation (or its owner) deletes its links: their viewers go too.
    token_hash = instance.token_hash
    transaction.on_commit(lambda: close_viewers(token_hash))


@receiver(post_save, sender=ShareSettings)
def _close_anonymous_viewers(
    sender: type[ShareSettings], instance: ShareSettings, **_: Any
) -> None:
    # Links became members-only: strangers following a live link stop now, in every process.
    if not instance.anyone_may_view:
        channel = events.share_policy_channel()
        transaction.on_commit(lambda: tell_from_thread(channel, events.share_closed()))


# --- what a viewer sees -------------------------------------------------------------------------


def _shown_seqs(link: ShareLink) -> list[int]:
    """The messages the link shows: the branch up to its snapshot point, or the branch its
    owner sees (live)."""
    tree = branches.tree_of(link.conversation)
    if link.snapshot_seq is None:
        return tree.path()
    return tree.path(link.snapshot_seq) if link.snapshot_seq else []


def visible_messages(link: ShareLink) -> list[Message]:
    messages = Message.objects.filter(conversation_id=link.conversation_id)
    return list(messages.filter(seq__in=_shown_seqs(link)).order_by("seq"))


def for_viewer(message: WireMessage, show_cost: bool, token: str) -> WireMessage:
    """A message as a viewer may see it: no cost or usage unless the owner chose to show them,
    no error sentence written for the owner, and its files reached through the link."""
    shown = message.copy()
    shown["attachments"] = [
        {**file, "url": reverse("chat:shared_file", args=[token, file["id"]])}
        for file in message["attachments"]
    ]
    if not show_cost:
        shown["cost"] = None
        shown["usage"] = None
    if shown["error"] is not None:
        shown["error"] = {"code": shown["error"]["code"], "message": str(SHARED_ERROR_MESSAGE)}
    shown["versions"] = []  # a viewer sees one branch and cannot reach the others
    return shown


def visible_file(link: ShareLink, public_id: str) -> Attachment | None:
    """A file of a message the link shows, or None."""
    files = Attachment.objects.filter(
        public_id=public_id, message__conversation_id=link.conversation_id
    )
    return files.filter(message__seq__in=_shown_seqs(link)).first()


def owner_label(link: ShareLink) -> str | None:
    """The owner's display name if they chose to show it; else nothing at all."""
    if not link.show_owner_name:
        return None
    return link.owner.get_full_name() or link.owner.get_username()


# --- continue in my account -----------------------------------------------------------------------


def continue_in_account(link: ShareLink, user: User) -> Conversation:
    """Copy what the link shows (finished messages, attachments included) into a new
    conversation of `user`'s. The original is only read. Cost, usage and prices stay behind:
    they were the owner's spending."""
    source = link.conversation
    shown = attachments.with_files(
        [m for m in visible_messages(link) if m.status != Message.Status.STREAMING]
    )
    # Files are copied in storage first (each copy owns its files: the original's owner may
    # delete them), and removed again if the rows do not land.
    files = [attachments.copies(m.files.all()) if m.attachments else [] for m in shown]
    try:
        with transaction.atomic():
            copy = Conversation.objects.create(
                owner=user,
                title=(source.title or gettext("Shared chat"))[:200],
                model=source.model,
                next_seq=len(shown) + 1,
            )
            copied = [_copied(m, copy, user, seq) for seq, m in enumerate(shown, start=1)]
            for message, its_files in zip(copied, files, strict=True):
                message.take_files(its_files)
            Message.objects.bulk_create(copied)
            Attachment.objects.bulk_create([file for its_files in files for file in its_files])
    except BaseException:
        attachments.discard(file.stored_name for its_files in files for file in its_files)
        raise
    return copy


def _copied(message: Message, into: Conversation, user: User, seq: int) -> Message:
    return Message(
        conversation=into,
        seq=seq,
        parent_seq=seq - 1,  # the copy is the one branch that was shown (0: first)
        role=message.role,
        author=user if message.role == Message.Role.USER else None,
        content=message.content,
        model=message.model,
        status=message.status,
        error_code=message.error_code,
        error_message=str(SHARED_ERROR_MESSAGE) if message.error_code else "",
        finish_reason=message.finish_reason,
        created_at=message.created_at,
        finished_at=message.finished_at,
    )
