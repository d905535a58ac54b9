"""Every object lookup for a user goes through here: another user's object does not exist."""

from __future__ import annotations

from django.http import Http404

from chat.models import Attachment, Conversation, ShareLink, User


class NotFound(Exception):
    """The object does not exist for this user (whether it exists for anyone is not said)."""


def conversation_for(user: User, public_id: object) -> Conversation:
    if not isinstance(public_id, str) or not public_id or len(public_id) > 32:
        raise NotFound
    try:
        # A deleted conversation (waiting out its undo window) does not exist for anything but
        # restoring it (chat.conversations.restore).
        return Conversation.objects.live().get(public_id=public_id, owner=user)
    except Conversation.DoesNotExist as exc:
        raise NotFound from exc


def conversation_or_404(user: User, public_id: str) -> Conversation:
    try:
        return conversation_for(user, public_id)
    except NotFound as exc:
        raise Http404("No such conversation") from exc


def attachment_or_404(user: User, public_id: str) -> Attachment:
    """A file of one of the user's messages (share viewers reach files through their link)."""
    if len(public_id) > 32:
        raise Http404("No such file")
    try:
        return Attachment.objects.get(
            public_id=public_id,
            message__conversation__owner=user,
            message__conversation__deleted_at__isnull=True,
        )
    except Attachment.DoesNotExist as exc:
        raise Http404("No such file") from exc


def share_link_or_404(user: User, public_id: str) -> ShareLink:
    """One of `user`'s own share links (another user's is a 404, like a missing one)."""
    if not public_id or len(public_id) > 32:
        raise Http404("No such link")
    try:
        return ShareLink.objects.select_related("conversation", "owner").get(
            public_id=public_id, owner=user
        )
    except ShareLink.DoesNotExist as exc:
        raise Http404("No such link") from exc
