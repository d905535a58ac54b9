"""Model prices, parsed once from the model list into a typed value."""

from __future__ import annotations

from decimal import Decimal

import pytest

from chat.nobox import Price, Usage

M = Decimal(1_000_000)


@pytest.mark.parametrize(
    ("pricing", "expected"),
    [
        ({"prompt": "0.000002", "completion": "0.000008"}, (Decimal("2E-6"), Decimal("8E-6"))),
        ({"prompt": 0.5, "completion": 1}, (Decimal("0.5"), Decimal("1"))),
        ({"prompt": " 0.1 ", "completion": "0"}, (Decimal("0.1"), Decimal("0"))),
        (
            {"prompt": "$0.000002/token", "completion": "USD 0.000004 per token"},
            (Decimal("2E-6"), Decimal("4E-6")),
        ),
        (
            {"input": "$2.50 / 1M tokens", "output": "$10 per million"},
            (Decimal("2.5") / M, Decimal("10") / M),
        ),
        (
            {"prompt": "2", "completion": "8", "unit": "per_million"},
            (Decimal(2) / M, Decimal(8) / M),
        ),
        ({"prompt_per_million": 3, "completion_per_1m": "15"}, (Decimal(3) / M, Decimal(15) / M)),
        (
            {"prompt": "0.002 / 1K tokens", "completion": "0.004/1000 tokens"},
            (Decimal("0.000002"), Decimal("0.000004")),
        ),
        ({"prompt": "free", "completion": "free"}, (Decimal(0), Decimal(0))),
        ("free", (Decimal(0), Decimal(0))),
        ({"prompt": "free", "completion": None}, (Decimal(0), None)),
        ({"prompt": -1, "completion": "NaN"}, (None, None)),
        ({"prompt": True, "completion": [1]}, (None, None)),
        ({"prompt": "ask sales", "completion": "0.1 per image"}, (None, None)),
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


def test_a_free_model_costs_nothing():
    assert Price.parse("free").cost(Usage(10, 10, 20)) == 0


@pytest.mark.parametrize(
    ("pricing", "per_million"),
    [
        ({"prompt": "0.0000025", "completion": "0.00001"}, ("2.50", "10")),
        ({"prompt": "0.00000059", "completion": "0.00000079"}, ("0.59", "0.79")),
        ({"prompt": "0.0000000001", "completion": "0.000003"}, ("0.0001", "3")),
        ("free", ("0", "0")),
        ({"prompt": "0.1"}, None),
        (None, None),
    ],
)
def test_a_price_per_million_tokens_is_short_money_or_none_when_unknown(pricing, per_million):
    assert Price.parse(pricing).per_million() == per_million
