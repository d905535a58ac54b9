"""Monthly spending limits: a person's own, else the team default (both set in the admin).

The check (chat.limits) runs in the send's transaction, after the person's user row is locked,
so two sends from two processes are decided one after the other; a reply still being written
counts as `BUDGET_RESERVE_PER_REPLY` until its final write records what it really cost. A send is
refused when what is spent this month plus those reservations is at or over the limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Count, DecimalField, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.functional import lazy
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django_stubs_ext import StrOrPromise

from chat.languages import translated_later
from chat.models import Message, TeamBudget, Usage, User

ZERO = Decimal(0)
MONEY: DecimalField[Any, Any] = DecimalField(max_digits=14, decimal_places=8)


class OverBudget(Exception):
    code = "budget_exceeded"
    retry_after = None  # no wait helps: the month or an admin must change it

    def __init__(self, message: StrOrPromise) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Budget:
    """A person's month: what they may spend, what they spent, what replies in flight hold."""

    limit: Decimal | None
    spent: Decimal
    in_flight: int
    month_start: datetime
    resets_at: datetime

    @property
    def reserved(self) -> Decimal:
        return self.in_flight * reserve_per_reply()

    @property
    def exceeded(self) -> bool:
        return self.limit is not None and self.spent + self.reserved >= self.limit

    @property
    def state(self) -> str:
        """For the admin list: "no limit", "ok", "near" (80 % used) or "exceeded"."""
        if self.limit is None:
            return "no limit"
        used = self.spent + self.reserved
        if used >= self.limit:
            return "exceeded"
        return "near" if used >= self.limit * Decimal("0.8") else "ok"


def reserve_per_reply() -> Decimal:
    return Decimal(str(settings.BUDGET_RESERVE_PER_REPLY))


def month_of(now: datetime) -> tuple[datetime, datetime]:
    """The calendar month around `now` in the server's time zone: [start, start of the next)."""
    local = timezone.localtime(now)
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    after = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return start, after


def with_month(users: QuerySet[User], now: datetime | None = None) -> QuerySet[User]:
    """`users` with their month read alongside, in the same statement (so from one snapshot: a
    final write landing meanwhile is counted once, as cost or as reservation): `month_spent`,
    `month_in_flight` and the team default `team_limit`."""
    start, after = month_of(now or timezone.now())
    spent = (
        Usage.objects.filter(user=OuterRef("pk"), finished_at__gte=start, finished_at__lt=after)
        .values("user")
        .annotate(total=Sum("cost"))
        .values("total")
    )
    in_flight = (
        Message.objects.streaming()
        .filter(conversation__owner=OuterRef("pk"))
        .values("conversation__owner")
        .annotate(n=Count("pk"))
        .values("n")
    )
    team = TeamBudget.objects.filter(pk=1).values("default_monthly_limit")
    return users.annotate(
        month_spent=Coalesce(Subquery(spent, output_field=MONEY), Value(ZERO), output_field=MONEY),
        month_in_flight=Coalesce(Subquery(in_flight), Value(0)),
        team_limit=Subquery(team, output_field=MONEY),
        month_start=Value(start),
        month_after=Value(after),
    )


def from_annotations(user: User) -> Budget:
    """The Budget of a user read through `with_month`."""
    own: Decimal | None = user.monthly_limit
    team: Decimal | None = user.team_limit  # type: ignore[attr-defined]
    return Budget(
        own if own is not None else team,
        Decimal(user.month_spent),  # type: ignore[attr-defined]
        user.month_in_flight,  # type: ignore[attr-defined]
        user.month_start,  # type: ignore[attr-defined]
        user.month_after,  # type: ignore[attr-defined]
    )


def budget_of(user: User, now: datetime | None = None) -> Budget:
    return from_annotations(with_month(User.objects.filter(pk=user.pk), now).get())


def refusal(budget: Budget) -> StrOrPromise:
    """The refusal, in the language of whoever reads it (see translated_later)."""
    assert budget.limit is not None
    values = {
        "limit": f"${budget.limit:.2f}",
        "spent": f"${budget.spent:.2f}",
        "held": f"${budget.reserved:.2f}",
    }
    if budget.in_flight:
        message = _(
            "You have reached your monthly spending limit of %(limit)s: %(spent)s spent this "
            "month (replies still being written hold %(held)s of it). It resets on %(day)s. An "
            "admin can raise it."
        )
    else:
        message = _(
            "You have reached your monthly spending limit of %(limit)s: %(spent)s spent this "
            "month. It resets on %(day)s. An admin can raise it."
        )
    return translated_later(message, day=lazy(reset_day, str)(budget), **values)


def reset_day(budget: Budget) -> str:
    """The day the limit resets, as the reader's language writes a date ("1 June 2026")."""
    return date_format(budget.resets_at, gettext("j F Y"))
