"""Account lifecycle: a deactivated user is signed out everywhere, at once; a session that
signs out closes its own sockets.

Hooked to the User model's save signals, so it holds whichever way the flag is flipped (admin,
shell, a future API): sessions are deleted, open sockets are closed, running replies stopped.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_out
from django.contrib.sessions.models import Session
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils import timezone

from chat.models import Message, User


@receiver(pre_save, sender=User)
def _remember_active(sender: type[User], instance: User, **kwargs: Any) -> None:
    if instance.pk is None:
        instance._was_active = None
        return
    was = User.objects.filter(pk=instance.pk).values_list("is_active", flat=True).first()
    instance._was_active = was  # type: ignore[attr-defined]


@receiver(post_save, sender=User)
def _sign_out_when_deactivated(sender: type[User], instance: User, **kwargs: Any) -> None:
    if getattr(instance, "_was_active", None) and not instance.is_active:
        sign_out_everywhere(instance)


def sign_out_everywhere(user: User) -> None:
    # Imported here: the relay imports models, and this module is loaded by the app config.
    from chat.replies import events
    from chat.replies.hub import tell_from_thread

    delete_sessions(user)
    tell_from_thread(events.user_channel(user.pk), events.sign_out(None, events.CLOSE_DEACTIVATED))
    running = Message.objects.streaming().filter(conversation__owner=user)
    for reply_id in running.values_list("public_id", flat=True):
        tell_from_thread(events.reply_channel(reply_id), events.stop(reply_id))


@receiver(user_logged_out)
def _close_the_sessions_sockets(
    sender: object, request: HttpRequest | None, user: User | None, **kwargs: Any
) -> None:
    from chat.replies import events
    from chat.replies.hub import tell_from_thread

    session_key = request.session.session_key if request is not None else None
    if user is not None and session_key:
        tell_from_thread(
            events.user_channel(user.pk), events.sign_out(session_key, events.CLOSE_SIGNED_OUT)
        )


def delete_sessions(user: User) -> int:
    """Delete the user's database sessions (the session store keeps no index by user)."""
    doomed = [
        session.pk
        for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator()
        if str(session.get_decoded().get("_auth_user_id")) == str(user.pk)
    ]
    Session.objects.filter(pk__in=doomed).delete()
    return len(doomed)
