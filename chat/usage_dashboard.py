"""The admin's usage dashboard: spend and tokens per person, per model and per day over a chosen
range of days (chat.usage_report does the sums; this module reads the range and shapes the page)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.utils.translation import gettext as _

from chat.usage_report import Group, Range, Totals, by, by_day, money, totals

DEFAULT_DAYS = 30
MAX_DAYS = 366


class RangeForm(forms.Form):
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end:
            if end < start:
                raise forms.ValidationError(_("The end is before the start."))
            if (end - start).days >= MAX_DAYS:
                raise forms.ValidationError(_("Choose at most %(days)d days.") % {"days": MAX_DAYS})
        return cleaned

    def range(self) -> Range:
        """The chosen days; the last DEFAULT_DAYS (or up to the chosen end) where the form
        says nothing usable."""
        default = Range.last_days(DEFAULT_DAYS)
        if not self.is_bound or not self.is_valid():
            return default
        end = self.cleaned_data.get("end") or default.end
        start = self.cleaned_data.get("start") or end - timedelta(days=DEFAULT_DAYS - 1)
        return Range(start, end)


def context(form: RangeForm) -> dict[str, Any]:
    span = form.range()
    records = span.records()
    people = by(records, "user_name")
    models = by(records, "model")
    days = by_day(records, span.start, span.end)
    return {
        "form": form,
        "span": span,
        "totals": totals(records),
        "people": people,
        "models": models,
        "days": days,
        "charts": {
            "days": _series(days),
            "people": _series(people),
            "models": _series(models),
        },
    }


def _series(groups: list[Group]) -> dict[str, list[Any]]:
    """What a chart needs: labels, USD (as strings, exact) and tokens."""
    return {
        "labels": [group["key"] or "(deleted)" for group in groups],
        "cost": [money(group["cost"]) for group in groups],
        "tokens": [group["total_tokens"] for group in groups],
    }


__all__ = ["RangeForm", "Totals", "context"]
