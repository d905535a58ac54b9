"""The audit trail: one function writes every event, so none can carry a secret by accident."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

from chat.models import AuditEvent, User


def client_address(request: HttpRequest | None) -> str | None:
    """The client's IP: from the proxy's X-Forwarded-For when we are told to trust it."""
    if request is None:
        return None
    if getattr(settings, "SECURE_PROXY_SSL_HEADER", None):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return str(forwarded.split(",")[0].strip()) or None
    address = request.META.get("REMOTE_ADDR")
    return str(address) if address else None


def record(
    action: str,
    *,
    actor: User | None,
    target: User | None = None,
    detail: str = "",
    request: HttpRequest | None = None,
) -> AuditEvent:
    """Write one audit event. `detail` is prose for people: never put a token in it."""
    return AuditEvent.objects.create(
        action=action,
        actor=actor,
        actor_name=actor.get_username() if actor else "",
        target_user=target,
        target_name=target.get_username() if target else "",
        detail=detail[:500],
        ip_address=client_address(request),
    )
