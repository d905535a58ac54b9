"""The audit trail: one function writes every event, so none can carry a secret by accident."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest

from chat.models import AuditEvent, User


def client_address(request: HttpRequest | None) -> str | None:
    """The client's IP, as the outermost of our TRUSTED_PROXY_COUNT proxies saw it.

    Each trusted proxy appends the address it was connected from to X-Forwarded-For, so only the
    last TRUSTED_PROXY_COUNT entries were written by someone we trust; anything to their left was
    sent by the client and may be forged. With no trusted proxy (the default) the header is
    ignored and the peer address is the client. Also used by django-axes, so lockouts and the
    audit trail agree on who someone is.
    """
    if request is None:
        return None
    remote = _valid_ip(request.META.get("REMOTE_ADDR"))
    count: int = settings.TRUSTED_PROXY_COUNT
    if count == 0:
        return remote
    hops = [hop.strip() for hop in str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",")]
    hops = [hop for hop in hops if hop]
    if len(hops) < count:
        # Fewer entries than proxies: the request skipped a proxy; only the peer is certain.
        return remote
    return _valid_ip(hops[-count]) or remote


def _valid_ip(value: object) -> str | None:
    try:
        return str(ipaddress.ip_address(str(value))) if value else None
    except ValueError:
        return None


def record(
    action: str,
    *,
    actor: User | None,
    target: User | None = None,
    detail: str = "",
    request: HttpRequest | None = None,
    actor_name: str = "",
) -> AuditEvent:
    """Write one audit event. `detail` is prose for people: never put a token in it.

    `actor_name` names an actor that is not a user (e.g. "manage.py set_nobox_token").
    """
    return AuditEvent.objects.create(
        action=action,
        actor=actor,
        actor_name=actor.get_username() if actor else actor_name[:150],
        target_user=target,
        target_name=target.get_username() if target else "",
        detail=detail[:500],
        ip_address=client_address(request),
    )
