"""Ending sessions: deactivating a person signs them out everywhere at once; signing out closes
that session's sockets; a changed password makes every socket re-check its session.

`deactivate_user` is the one way to deactivate (the admin's action and its user form both come
here). Sockets in every process hear of it through the relay's bus (chat.replies.hub).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_out
from django.contrib.sessions.models import Session
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils import timezone

from chat import audit
from chat.models import AuditEvent, Message, User
from chat.replies import events
from chat.replies.hub import tell_from_thread


def deactivate_user(user: User, actor: User | None, request: HttpRequest | None = None) -> None:
    """Deactivate `user`, audit it, and sign them out everywhere."""
    user.is_active = False
    user.save(update_fields=["is_active"])
    audit.record(AuditEvent.Action.USER_DEACTIVATED, actor=actor, target=user, request=request)
    sign_out_everywhere(user)


def sign_out_everywhere(user: User) -> None:
    """Delete the user's sessions, close their sockets in every process, stop their replies."""
    delete_sessions(user)
    tell_from_thread(events.user_channel(user.pk), events.sign_out(None, events.CLOSE_DEACTIVATED))
    running = Message.objects.streaming().filter(conversation__owner=user)
    for reply_id in running.values_list("public_id", flat=True):
        tell_from_thread(events.reply_channel(reply_id), events.stop(reply_id))


def delete_sessions(user: User) -> int:
    """Delete the user's database sessions (the session store keeps no index by user)."""
    doomed = [
        session.pk
        for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator()
        if str(session.get_decoded().get("_auth_user_id")) == str(user.pk)
    ]
    Session.objects.filter(pk__in=doomed).delete()
    return len(doomed)


@receiver(user_logged_out)
def _close_the_sessions_sockets(
    sender: object, request: HttpRequest | None, user: User | None, **kwargs: Any
) -> None:
    session_key = request.session.session_key if request is not None else None
    if user is not None and session_key:
        event = events.sign_out(session_key, events.CLOSE_SIGNED_OUT)
        tell_from_thread(events.user_channel(user.pk), event)


@receiver(post_save, sender=User)
def _recheck_after_a_password_change(sender: type[User], instance: User, **kwargs: Any) -> None:
    # Django keeps the new raw password in `_password` until just after this signal, whatever
    # changed it (a form, the admin, `manage.py changepassword`): sessions signed in with the old
    # one no longer sign in, and their sockets, in every process, check now.
    if getattr(instance, "_password", None) is not None and not kwargs.get("created"):
        tell_from_thread(events.user_channel(instance.pk), events.recheck())
