"""Every limit a send must pass (chat.budgets, chat.rate_limits), read for one send or for sends
stored together in one transaction (`turns.store_turn`, `turns.store_turns`).

The people are row-locked first, in pk order, and read in one statement after the lock (limit,
month's spending, replies in flight, sends of the last minute), so two sends at once, from any
processes, cannot both take the last cent or the last slot. Each send of
a group counts the ones before it. A send a group does not admit is stored (or refused, with the
reason) one by one afterwards, by `store_turn`, which then counts the group's committed sends.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from chat import budgets, rate_limits
from chat.models import Message, User

Refusal = budgets.OverBudget | rate_limits.RateLimited


class Quota:
    def __init__(self, users: list[User]) -> None:
        pks = sorted({user.pk for user in users})
        _lock_people(pks)
        self.read_at = timezone.now()
        self.budgets: dict[int, budgets.Budget] = {}
        # Each person's sends of the minute before `read_at` in the database: what counts them
        # when Redis does not (not configured, or failing).
        self.recent: dict[int, int] = {}
        for pk, budget, recent in read_people(pks, self.read_at):
            self.budgets[pk], self.recent[pk] = budget, recent
        self.taken: defaultdict[int, int] = defaultdict(int)

    def refusal(self, user: User, client_id: str) -> Refusal | None:
        """Why this send does not fit after the group's earlier ones, or None: it fits, and
        is counted."""
        budget = self.budgets[user.pk]
        earlier = self.taken[user.pk]
        if earlier:
            budget = replace(budget, in_flight=budget.in_flight + earlier)
        if budget.exceeded:
            return budgets.OverBudget(budgets.refusal(budget))
        if budget.in_flight >= settings.CONCURRENT_REPLIES:
            return rate_limits.too_many_at_once(budget.in_flight)
        wait = rate_limits.send_wait(user, client_id, earlier, self.recent[user.pk], self.read_at)
        if wait > 0:
            return rate_limits.too_many_sends(wait)
        self.taken[user.pk] += 1
        return None

    def admits(self, user: User, client_id: str) -> bool:
        """Whether this send fits every limit after the group's earlier ones; counts it if so."""
        return self.refusal(user, client_id) is None


def _lock_people(pks: list[int]) -> None:
    """Lock the people's rows until the transaction ends, in pk order (no deadlock with another
    send or group). FOR NO KEY UPDATE: sends of the same person wait for each other, but a row
    that only points at the person (a usage record, a message) is written without waiting; with
    FOR UPDATE, a reply's final write (its usage record) and a send that holds the person and
    waits for the conversation deadlocked.

    PostgreSQL only: the read that follows is a new statement, so it sees whatever a send that
    held the lock before committed. SQLite has no row locks, and needs none: its IMMEDIATE
    transactions already serialise every writer, so this would be a plain, useless SELECT."""
    if not connection.features.has_select_for_update:
        return
    list(User.objects.select_for_update(no_key=True).filter(pk__in=pks).order_by("pk").values("pk"))


# The read every send makes, written as SQL: built through the ORM (`budgets.with_month` and a
# count of the last minute's sends), the same statement cost ~4 ms of Python to build and compile
# and ~0.2 ms in the database, on every send. tests/test_limits.py holds it to the ORM's answer.
PEOPLE = """
SELECT person.id,
       person.monthly_limit,
       (SELECT default_monthly_limit FROM chat_teambudget WHERE id = %(team)s),
       (SELECT SUM(cost) FROM chat_usage
         WHERE user_id = person.id AND finished_at >= %(month_start)s
           AND finished_at < %(month_after)s),
       (SELECT COUNT(*) FROM chat_message
          JOIN chat_conversation ON chat_conversation.id = chat_message.conversation_id
         WHERE chat_conversation.owner_id = person.id AND chat_message.status = %(streaming)s),
       (SELECT COUNT(*) FROM chat_message
         WHERE author_id = person.id AND created_at > %(minute_ago)s)
  FROM chat_user AS person
 WHERE person.id IN ({people})
"""


def read_people(pks: list[int], now: datetime) -> Iterator[tuple[int, budgets.Budget, int]]:
    """Each person's budget at `now` (`budgets.with_month`'s figures) and sends of the minute
    before (every message they asked for: their own, and replies they regenerated), in one
    statement."""
    if not pks:
        return
    start, after = budgets.month_of(now)
    when = connection.ops.adapt_datetimefield_value
    values: dict[str, Any] = {
        "team": 1,  # the one TeamBudget row (TeamBudget.current)
        "month_start": when(start),
        "month_after": when(after),
        "streaming": Message.Status.STREAMING.value,
        "minute_ago": when(now - timedelta(seconds=rate_limits.WINDOW_SECONDS)),
    }
    names = [f"person{index}" for index in range(len(pks))]
    values.update(zip(names, pks, strict=True))
    sql = PEOPLE.format(people=", ".join(f"%({name})s" for name in names))
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        rows = cursor.fetchall()
    for pk, own, team, spent, in_flight, recent in rows:
        limit = _money(own) if own is not None else _money(team)
        yield (
            pk,
            budgets.Budget(limit, _money(spent) or budgets.ZERO, in_flight, start, after),
            recent,
        )


def _money(value: Any) -> Decimal | None:
    """A money column as the ORM reads it: SQLite hands back floats or ints, PostgreSQL
    Decimals."""
    if value is None:
        return None
    money: Decimal = budgets.MONEY.to_python(value)
    return money
