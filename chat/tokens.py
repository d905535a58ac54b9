"""Nobox tokens: encrypted at rest, resolved for a send, verified, revoked, rotated, audited.

Tokens are encrypted with authenticated encryption under rotatable keys (MultiFernet): the first
key in NOBOX_TOKEN_KEYS encrypts, every key decrypts. A token is never logged, never rendered,
never sent to a browser; people see its last four characters only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeGuard

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django_stubs_ext import StrOrPromise

from chat import audit
from chat.models import AuditEvent, NoboxToken, User

Action = AuditEvent.Action
State = NoboxToken.State


class TokenUnreadable(Exception):
    """The stored ciphertext cannot be decrypted (tampered, or encrypted under a lost key)."""


class MalformedToken(ValueError):
    """Not something that can be a Nobox token; `str()` says why, for the person who typed it."""


class TokenProblem(Exception):
    """The user cannot send: no usable token. `code` and `message` go to the user as they are
    (`message` translated where it is sent)."""

    def __init__(self, code: str, message: StrOrPromise) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# Why a token cannot be used: the code and the message the person is shown.
Problem = tuple[str, StrOrPromise]

PROBLEMS: dict[State, Problem] = {
    State.EXPIRED: (
        "token_expired",
        _("Your Nobox token has expired. Save a new one in Settings or ask your admin."),
    ),
    State.REVOKED: (
        "token_revoked",
        _(
            "Your Nobox token was revoked by an admin. Save a new one in Settings or ask your "
            "admin."
        ),
    ),
    State.REJECTED: (
        "token_rejected",
        _("Nobox rejected your token (401). Replace it in Settings, then retry."),
    ),
}
NO_TOKEN: Problem = ("no_token", _("Save your Nobox token in Settings before chatting."))
UNREADABLE: Problem = (
    "token_unreadable",
    _("Your saved Nobox token can no longer be read. Please re-enter it in Settings."),
)


# --- format ------------------------------------------------------------------------------------

MIN_TOKEN_LENGTH = 8
MAX_TOKEN_LENGTH = 500


def check_format(token: str) -> str:
    """Return `token` if it can be sent as a Bearer header, else raise MalformedToken.

    A token travels in an HTTP header, which takes printable ASCII only: a pasted non-breaking
    hyphen or a stray newline would fail deep inside httpx, on every send, long after it was
    saved. Every way in (settings page, admin, command, store functions) checks here.
    """
    if not MIN_TOKEN_LENGTH <= len(token) <= MAX_TOKEN_LENGTH:
        raise MalformedToken(
            gettext(
                "That does not look like a Nobox token: it has %(length)d characters, and a "
                "token has %(min)d to %(max)d."
            )
            % {"length": len(token), "min": MIN_TOKEN_LENGTH, "max": MAX_TOKEN_LENGTH}
        )
    bad = next((ch for ch in token if not "!" <= ch <= "~"), None)
    if bad is not None:
        raise MalformedToken(
            gettext(
                "That does not look like a Nobox token: it contains %(character)s at position "
                "%(position)d, and a token holds printable ASCII characters only, with no "
                "spaces. Copy it again from the Nobox dashboard."
            )
            % {"character": _name(bad), "position": token.index(bad) + 1}
        )
    return token


def _name(ch: str) -> str:
    if ch.isspace():
        return gettext("a space or line break")
    return f"U+{ord(ch):04X}" + (f" ({ch!r})" if ch.isprintable() else "")


# --- encryption --------------------------------------------------------------------------------


def _keys() -> list[Fernet]:
    return [Fernet(key.encode()) for key in settings.NOBOX_TOKEN_KEYS]


def encrypt(token: str) -> bytes:
    return MultiFernet(_keys()).encrypt(token.encode())


def decrypt(ciphertext: bytes | memoryview) -> str:
    try:
        return MultiFernet(_keys()).decrypt(bytes(ciphertext)).decode()
    except InvalidToken as exc:
        raise TokenUnreadable("stored Nobox token cannot be decrypted; please re-enter it") from exc


# --- saving --------------------------------------------------------------------------------------


def store_token(
    user: User,
    token: str,
    *,
    actor: User | None = None,
    request: HttpRequest | None = None,
    verified: bool = True,
    actor_name: str = "",
) -> NoboxToken:
    """Save (or replace) `user`'s own token and audit it. The actor is the user themself unless
    another user or a named non-user actor (`actor_name`, e.g. a command) is given."""
    if actor is None and not actor_name:
        actor = user
    with transaction.atomic():
        record = NoboxToken.objects.select_for_update().filter(user=user).first()
        record = record or NoboxToken(user=user)
        set_token(
            record,
            token,
            actor=actor,
            request=request,
            verified=verified,
            actor_name=actor_name,
        )
    return record


def store_team_token(
    token: str,
    *,
    actor: User | None,
    request: HttpRequest | None = None,
    actor_name: str = "",
) -> NoboxToken:
    """Save (or replace) the team's shared token, used by users allowed to and with none."""
    with transaction.atomic():
        record = NoboxToken.objects.select_for_update().filter(is_team=True).first()
        record = record or NoboxToken(is_team=True)
        set_token(record, token, actor=actor, request=request, actor_name=actor_name)
    return record


def set_token(
    record: NoboxToken,
    token: str,
    *,
    actor: User | None,
    request: HttpRequest | None = None,
    verified: bool = False,
    actor_name: str = "",
) -> None:
    """Put a new secret into `record` (new or existing) and audit it. Replacing a token clears
    its revoked and rejected marks: it is a different token. Raises MalformedToken first."""
    check_format(token)
    action = Action.TOKEN_REPLACED if record.pk else Action.TOKEN_SET
    now = timezone.now()
    record.is_team = record.user_id is None
    record.ciphertext = encrypt(token)
    record.last4 = token[-4:]
    record.updated_at = now
    record.revoked_at = None
    record.rejected_at = None
    record.last_verify_ok = True if verified else None
    record.last_verify_error = ""
    record.last_verified_at = now if verified else None
    record.save()
    _audit(record, action, actor=actor, request=request, actor_name=actor_name)


def remove_token(user: User, *, request: HttpRequest | None = None) -> bool:
    deleted, _ = NoboxToken.objects.filter(user=user).delete()
    if deleted:
        audit.record(Action.TOKEN_REMOVED, actor=user, target=user, request=request)
    return deleted > 0


def revoke(record: NoboxToken, *, actor: User | None, request: HttpRequest | None = None) -> None:
    if record.revoked_at is not None:
        return
    record.revoked_at = timezone.now()
    record.save(update_fields=["revoked_at"])
    _audit(record, Action.TOKEN_REVOKED, actor=actor, request=request)


def set_expiry(
    record: NoboxToken,
    expires_at: datetime | None,
    *,
    actor: User | None,
    request: HttpRequest | None = None,
) -> None:
    record.expires_at = expires_at
    record.save(update_fields=["expires_at"])
    when = expires_at.isoformat() if expires_at else "never"
    _audit(
        record, Action.TOKEN_EXPIRY_CHANGED, actor=actor, request=request, note=f"expires {when}"
    )


def record_verification(
    record: NoboxToken, error: str | None, *, actor: User | None, request: HttpRequest | None = None
) -> None:
    """Keep the result of a models-list call made with the token (None = it worked)."""
    record.last_verified_at = timezone.now()
    record.last_verify_ok = error is None
    record.last_verify_error = (error or "")[:300]
    if error is None:
        record.rejected_at = None
    record.save(
        update_fields=["last_verified_at", "last_verify_ok", "last_verify_error", "rejected_at"]
    )
    outcome = "ok" if error is None else f"failed: {error}"
    _audit(record, Action.TOKEN_VERIFIED, actor=actor, request=request, note=outcome)


def mark_rejected(record_pk: int) -> None:
    """Nobox answered 401 to this token: stop using it until it is replaced or verifies again."""
    updated = NoboxToken.objects.filter(pk=record_pk, rejected_at__isnull=True).update(
        rejected_at=timezone.now()
    )
    if updated:
        record = NoboxToken.objects.select_related("user").get(pk=record_pk)
        _audit(record, Action.TOKEN_REJECTED, actor=None, note="rejected by Nobox (401)")


def _audit(
    record: NoboxToken,
    action: str,
    *,
    actor: User | None,
    request: HttpRequest | None = None,
    note: str = "",
    actor_name: str = "",
) -> None:
    detail = f"{_describe(record)} {note}".strip()
    audit.record(
        action,
        actor=actor,
        target=record.user,
        request=request,
        detail=detail,
        actor_name=actor_name,
    )


def _describe(record: NoboxToken) -> str:
    return f"{'team token' if record.is_team else 'token'} …{record.last4}"


# --- using ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UsableToken:
    token: str = field(repr=False)
    record_pk: int
    source: str  # "own" or "team"
    last_used_at: datetime | None = None

    def use_worth_recording(self, now: datetime) -> bool:
        """Whether a send at `now` should move the token's `last_used_at`: the admin reads it
        to the minute, and writing it on every send cost a statement per send."""
        return self.last_used_at is None or now - self.last_used_at >= LAST_USED_PRECISION


LAST_USED_PRECISION = timedelta(minutes=1)


def resolve(user: User) -> UsableToken:
    """The token a send by `user` may use, or TokenProblem saying why there is none.

    The user's own token wins; without a usable one, the team token when the admin allows it.
    """
    return _choose(user, NoboxToken.objects.filter(user=user).first(), _team_token)


def usable_tokens(users: list[User]) -> dict[int, UsableToken]:
    """`resolve` for many people in two queries: the usable token of each user's pk. Users
    without one are left out; `resolve` says why."""
    owns = {record.user_id: record for record in NoboxToken.objects.filter(user__in=users)}
    team = functools.cache(_team_token)
    usable = {}
    for user in users:
        try:
            usable[user.pk] = _choose(user, owns.get(user.pk), team)
        except TokenProblem:
            continue
    return usable


def _choose(
    user: User, own: NoboxToken | None, team_token: Callable[[], NoboxToken | None]
) -> UsableToken:
    own_problem = NO_TOKEN
    if own is not None:
        read = _read(own)
        if isinstance(read, str):
            return UsableToken(read, own.pk, "own", own.last_used_at)
        own_problem = read
    team = team_token()  # only looked up when it may be needed
    if _team_allows(team, user):
        read = _read(team)
        if isinstance(read, str):
            return UsableToken(read, team.pk, "team", team.last_used_at)
    raise TokenProblem(*own_problem)  # the person's own: the team token is the admin's affair


def _read(record: NoboxToken) -> str | Problem:
    """The token in plain text, or why it cannot be used (decrypted once: checked and read)."""
    if record.state != State.ACTIVE:
        return PROBLEMS[State(record.state)]
    try:
        return decrypt(record.ciphertext)
    except TokenUnreadable:
        return UNREADABLE


def _team_token() -> NoboxToken | None:
    return NoboxToken.objects.filter(is_team=True).first()


def _team_token_for(user: User) -> NoboxToken | None:
    team = _team_token()
    return team if _team_allows(team, user) else None


def _team_allows(team: NoboxToken | None, user: User) -> TypeGuard[NoboxToken]:
    return team is not None and (team.team_for_everyone or user.may_use_team_token)


def team_token_available(user: User) -> bool:
    team = _team_token_for(user)
    return team is not None and isinstance(_read(team), str)


# --- key rotation --------------------------------------------------------------------------------


@dataclass
class RotationReport:
    rotated: int = 0
    current: int = 0
    unreadable: int = 0


def rotate_keys(*, actor: User | None = None, actor_name: str = "") -> RotationReport:
    """Re-encrypt every token under the first key. Idempotent: tokens already under it are left.

    Each row is rewritten on its own, so every token stays readable at every step (with the old
    keys still listed). Unreadable rows are counted and left for their owners to re-enter.
    """
    primary, everything = _keys()[0], MultiFernet(_keys())
    report = RotationReport()
    for record in NoboxToken.objects.only("pk", "ciphertext").iterator():
        ciphertext = bytes(record.ciphertext)
        try:
            primary.decrypt(ciphertext)
            report.current += 1
            continue
        except InvalidToken:
            pass
        try:
            rotated = everything.rotate(ciphertext)
        except InvalidToken:
            report.unreadable += 1
            continue
        NoboxToken.objects.filter(pk=record.pk, ciphertext=ciphertext).update(ciphertext=rotated)
        report.rotated += 1
    audit.record(
        Action.TOKENS_ROTATED,
        actor=actor,
        actor_name=actor_name,
        detail=(
            f"re-encrypted {report.rotated}, already current {report.current}, "
            f"unreadable {report.unreadable}"
        ),
    )
    return report
