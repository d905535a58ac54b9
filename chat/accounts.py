"""Account lifecycle: a deactivated user is signed out everywhere, at once.

Hooked to the User model's save signals, so it holds whichever way the flag is flipped (admin,
shell, a future API): sessions are deleted, open sockets are closed, running replies stopped.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.sessions.models import Session
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver
from django.utils import timezone

from chat.models import Message, User


def user_group(user_pk: int) -> str:
    """Every socket of a user is in this group, in whichever process it lives."""
    return f"user.{user_pk}"


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
    delete_sessions(user)
    layer = get_channel_layer()
    if layer is None:
        return
    async_to_sync(layer.group_send)(user_group(user.pk), {"type": "user.deactivated"})
    from chat.replies import control_group  # replies imports models; keep this module light

    running = Message.objects.filter(
        conversation__owner=user, status=Message.Status.STREAMING
    ).values_list("public_id", flat=True)
    for reply_id in running:
        async_to_sync(layer.group_send)(control_group(reply_id), {"type": "reply.stop"})


def delete_sessions(user: User) -> int:
    """Delete the user's database sessions (the session store keeps no index by user)."""
    doomed = [
        session.pk
        for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator()
        if str(session.get_decoded().get("_auth_user_id")) == str(user.pk)
    ]
    Session.objects.filter(pk__in=doomed).delete()
    return len(doomed)
