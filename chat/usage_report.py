"""What the usage records add up to, for a person (their settings page, a chat's header) and for
the admin (the dashboard, the CSV export). Every figure is a sum over `chat.models.Usage` rows:
nothing is counted twice or kept elsewhere."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypedDict

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from chat.models import Usage


class Totals(TypedDict):
    records: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: Decimal  # over records with a known price
    unknown_price: int  # records whose price was unknown (cost not counted)
    estimated: int  # records whose tokens are estimates


def _sums() -> dict[str, Any]:
    # Aliases apart from the field names: an aggregate may not shadow the column it sums.
    return {
        "n_records": Count("pk"),
        "sum_prompt": Sum("prompt_tokens"),
        "sum_completion": Sum("completion_tokens"),
        "sum_total": Sum("total_tokens"),
        "sum_cost": Sum("cost"),
        "n_unknown": Count("pk", filter=Q(cost__isnull=True)),
        "n_estimated": Count("pk", filter=Q(estimated=True)),
    }


def _clean(row: dict[str, Any]) -> Totals:
    return {
        "records": row["n_records"] or 0,
        "prompt_tokens": row["sum_prompt"] or 0,
        "completion_tokens": row["sum_completion"] or 0,
        "total_tokens": row["sum_total"] or 0,
        "cost": row["sum_cost"] if row["sum_cost"] is not None else Decimal(0),
        "unknown_price": row["n_unknown"] or 0,
        "estimated": row["n_estimated"] or 0,
    }


def totals(records: QuerySet[Usage]) -> Totals:
    return _clean(records.aggregate(**_sums()))


class Group(Totals):
    key: str


def by(records: QuerySet[Usage], field: str) -> list[Group]:
    """Totals per value of `field` ("user_name", "model"), the most expensive first."""
    rows = records.order_by().values(field).annotate(**_sums())
    groups: list[Group] = [{"key": str(row[field] or ""), **_clean(row)} for row in rows]
    return sorted(groups, key=lambda g: (-g["cost"], -g["total_tokens"], g["key"]))


def by_day(records: QuerySet[Usage], start: date, end: date) -> list[Group]:
    """Totals per day (server time zone) from `start` to `end` inclusive, empty days as zeros,
    so a chart's axis has no holes."""
    tz = timezone.get_current_timezone()
    rows = {
        row["day"]: _clean(row)
        for row in records.order_by()
        .annotate(day=TruncDate("finished_at", tzinfo=tz))
        .values("day")
        .annotate(**_sums())
    }
    empty = _clean(dict.fromkeys(_sums()))
    return [{"key": day.isoformat(), **rows.get(day, empty)} for day in _days(start, end)]


def _days(start: date, end: date) -> Iterator[date]:
    day = start
    while day <= end:
        yield day
        day += timedelta(days=1)


@dataclass(frozen=True)
class Range:
    """Whole days, [start, end] inclusive, in the server's time zone."""

    start: date
    end: date

    @classmethod
    def last_days(cls, days: int, today: date | None = None) -> Range:
        today = today or timezone.localdate()
        return cls(today - timedelta(days=days - 1), today)

    @property
    def start_at(self) -> datetime:
        return _midnight(self.start)

    @property
    def end_before(self) -> datetime:
        return _midnight(self.end + timedelta(days=1))

    def records(self, records: QuerySet[Usage] | None = None) -> QuerySet[Usage]:
        base = records if records is not None else Usage.objects.all()
        return base.filter(finished_at__gte=self.start_at, finished_at__lt=self.end_before)


def _midnight(day: date) -> datetime:
    return timezone.make_aware(datetime(day.year, day.month, day.day))


def money(value: Decimal) -> str:
    """USD as the wire and the charts carry it: a plain decimal string, no exponent."""
    return f"{value.normalize():f}" if value else "0"


def usd(value: Decimal) -> str:
    """Money for people: cents, or three significant digits below a cent ($0.000312), so a
    month of small replies does not read as $0.00."""
    if value == 0:
        return "$0.00"
    if abs(value) >= Decimal("0.01"):
        return f"${value:,.2f}"
    # adjusted(): the exponent of the first significant digit (-4 for 0.000312).
    decimals = min(8, -value.adjusted() + 2)
    return f"${value:.{decimals}f}".rstrip("0")


# --- CSV ---------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "id",
    "finished_at",
    "started_at",
    "user_id",
    "user_name",
    "conversation_id",
    "message_id",
    "kind",
    "model",
    "token_source",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "estimated",
    "prompt_price",
    "completion_price",
    "cost",
    "status",
)
# A spreadsheet runs a cell that starts with one of these as a formula: such text is sent with
# a leading apostrophe (user names and model ids are not ours to trust).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_rows(records: QuerySet[Usage]) -> Iterator[str]:
    """The raw records as CSV, a line at a time (an export may be large: it is streamed)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(values: Iterable[Any]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        return buffer.getvalue()

    yield line(CSV_COLUMNS)
    for record in records.order_by("finished_at", "pk").iterator(chunk_size=2000):
        yield line(_cell(getattr(record, _attribute(column))) for column in CSV_COLUMNS)


def _attribute(column: str) -> str:
    return {"id": "pk"}.get(column, column)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    text = str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text
