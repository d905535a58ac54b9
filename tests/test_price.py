"""Model prices, parsed once from the model list into a typed value."""

from __future__ import annotations

from decimal import Decimal

import pytest

from chat.nobox import Price, Usage


@pytest.mark.parametrize(
    ("pricing", "expected"),
    [
        ({"prompt": "0.000002", "completion": "0.000008"}, (Decimal("2E-6"), Decimal("8E-6"))),
        ({"prompt": 0.5, "completion": 1}, (Decimal("0.5"), Decimal("1"))),
        ({"prompt": " 0.1 ", "completion": "0"}, (Decimal("0.1"), Decimal("0"))),
        ({"prompt": "free", "completion": None}, (None, None)),
        ({"prompt": -1, "completion": "NaN"}, (None, None)),
        ({"prompt": True, "completion": [1]}, (None, None)),
        ("0.1/token", (None, None)),
        (None, (None, None)),
    ],
)
def test_prices_are_read_tolerantly_and_unknown_is_never_zero(pricing, expected):
    price = Price.parse(pricing)
    assert (price.prompt, price.completion) == expected


def test_cost_is_prompt_and_completion_tokens_at_their_prices():
    price = Price.parse({"prompt": "0.000002", "completion": "0.000008"})
    assert price.cost(Usage(1000, 500, 1500)) == Decimal("0.006")


def test_cost_is_unknown_without_usage_or_a_price():
    assert Price.parse({"prompt": "0.1", "completion": "0.2"}).cost(None) is None
    assert Price.parse({"prompt": "0.1"}).cost(Usage(1, 1, 2)) is None
