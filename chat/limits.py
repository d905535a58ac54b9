"""Every limit a send must pass (chat.budgets, chat.rate_limits), for sends stored together in
one transaction (`turns.store_turns`): the group's people are row-locked first, in pk order, like
a single send locks its person, and each send of the group counts the ones before it. A send the
group does not admit is stored (or refused, with the reason) one by one afterwards, by
`store_turn`, which then counts the group's committed sends."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from django.conf import settings

from chat import budgets, rate_limits
from chat.models import User


class GroupQuota:
    def __init__(self, users: list[User]) -> None:
        pks = sorted({user.pk for user in users})
        # Locked before any conversation (as store_turn does), in pk order: no deadlock with
        # a single send or another process's group.
        list(
            User.objects.select_for_update(no_key=True)
            .filter(pk__in=pks)
            .order_by("pk")
            .values("pk")
        )
        self.budgets = {
            person.pk: budgets.from_annotations(person)
            for person in budgets.with_month(User.objects.filter(pk__in=pks))
        }
        self.pks = pks
        # Each person's sends of the last minute in the database: read when Redis does not
        # count them (not configured, or failing), once for the group.
        self.recent: dict[int, int] | None = None
        self.taken: defaultdict[int, int] = defaultdict(int)
        self.reserve: Decimal = budgets.reserve_per_reply()

    def admits(self, user: User, client_id: str) -> bool:
        """Whether this send fits every limit after the group's earlier ones; counts it if so."""
        budget = self.budgets[user.pk]
        earlier = self.taken[user.pk]
        in_flight = budget.in_flight + earlier
        if budget.limit is not None and budget.spent + in_flight * self.reserve >= budget.limit:
            return False
        if in_flight >= settings.CONCURRENT_REPLIES:
            return False
        if not rate_limits.admits_another_send(
            user, client_id, earlier, lambda: self._sent_recently(user.pk)
        ):
            return False
        self.taken[user.pk] += 1
        return True

    def _sent_recently(self, user_pk: int) -> int:
        if self.recent is None:
            self.recent = rate_limits.sent_last_minute(self.pks)
        return self.recent.get(user_pk, 0)
