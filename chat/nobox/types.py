"""Plain data passed into and out of the Nobox client."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any


@dataclass(frozen=True)
class ChatRequest:
    model: str
    # OpenAI wire format, sent untouched: {"role": ..., "content": str | list[part]}
    messages: list[dict[str, Any]]
    temperature: float | None = None
    max_tokens: int | None = None


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True)
class Delta:
    """One piece of assistant text, in arrival order."""

    text: str


@dataclass(frozen=True)
class Completed:
    """Yielded once, last, after ``[DONE]``."""

    finish_reason: str | None  # "stop" | "length" | "content_filter" | None
    usage: Usage | None  # None when upstream sent no usage
    model: str | None
    completion_id: str | None


@dataclass(frozen=True)
class Completion:
    """Result of a non-streaming request."""

    text: str
    finish_reason: str | None
    usage: Usage | None
    model: str | None
    completion_id: str | None


# How a price may say what it is per: a number of tokens, by the words upstream uses.
_PER_UNIT = (
    (re.compile(r"1\s*m\b|1,?000,?000|million|mtok", re.I), 1_000_000),
    (re.compile(r"1\s*k\b|1,?000\b|thousand|ktok", re.I), 1_000),
)
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?", re.I)
_PROMPT_KEYS = ("prompt", "input")
_COMPLETION_KEYS = ("completion", "output")
_KEY_SUFFIXES = (
    ("", 1),
    ("_per_token", 1),
    ("_per_million", 1_000_000),
    ("_per_1m", 1_000_000),
    ("_per_thousand", 1_000),
    ("_per_1k", 1_000),
)


@dataclass(frozen=True)
class Price:
    """USD per token, parsed once from the model list; None where Nobox did not say.

    A price is *unknown* when either side is None (never read as zero: an unknown price is not
    a free model), *free* when both are zero."""

    prompt: Decimal | None
    completion: Decimal | None

    @classmethod
    def parse(cls, pricing: Any) -> Price:
        """Tolerant: numbers or numeric strings ("0.000002", "$2.50 / 1M tokens", "free") under
        "prompt"/"input" and "completion"/"output", per token unless labelled per million or
        per thousand (in the value, in the key, e.g. "prompt_per_million", or in a "unit"
        field); anything else is unknown."""
        if isinstance(pricing, str) and pricing.strip().lower() == "free":
            return cls(Decimal(0), Decimal(0))
        if not isinstance(pricing, dict):
            return cls(None, None)
        per = _tokens_per_unit(pricing.get("unit"))
        return cls(_side(pricing, _PROMPT_KEYS, per), _side(pricing, _COMPLETION_KEYS, per))

    @property
    def known(self) -> bool:
        return self.prompt is not None and self.completion is not None

    @property
    def free(self) -> bool:
        return self.prompt == 0 and self.completion == 0

    def per_million(self) -> tuple[str, str] | None:
        """USD per million prompt and completion tokens as short money strings ("2.50", "10"),
        or None when the price is unknown."""
        if self.prompt is None or self.completion is None:
            return None
        million = Decimal(1_000_000)
        return _money(self.prompt * million), _money(self.completion * million)

    def cost(self, usage: Usage | None) -> Decimal | None:
        if usage is None or self.prompt is None or self.completion is None:
            return None
        return self.prompt * usage.prompt_tokens + self.completion * usage.completion_tokens


def _side(pricing: dict[str, Any], names: tuple[str, ...], per: int) -> Decimal | None:
    for name in names:
        for suffix, key_per in _KEY_SUFFIXES:
            if name + suffix in pricing:
                return _per_token(pricing[name + suffix], key_per if suffix else per)
    return None


def _tokens_per_unit(unit: Any) -> int:
    if isinstance(unit, str):
        for pattern, tokens in _PER_UNIT:
            if pattern.search(unit):
                return tokens
    return 1


def _per_token(value: Any, per: int) -> Decimal | None:
    if isinstance(value, str):
        parsed = _number_and_unit(value)
        if parsed is None:
            return None
        value, per = parsed[0], parsed[1] or per
    number = _decimal(value)
    return number / per if number is not None else None


def _number_and_unit(text: str) -> tuple[str, int | None] | None:
    """ "$2.50 / 1M tokens" -> ("2.50", 1000000); "0.000002" -> ("0.000002", None); words
    that are not a price -> None."""
    text = text.strip().lower().replace(",", "")
    if text == "free":
        return "0", None
    found = _NUMBER.search(text)
    if found is None or text[: found.start()].strip() not in ("", "$", "usd"):
        return None
    rest = text[found.end() :]
    unit = _tokens_per_unit(rest)
    if unit == 1 and not _says_per_token(rest):
        return None
    return found.group(), (unit if unit != 1 else None)


def _says_per_token(rest: str) -> bool:
    words = rest.replace("/", " ").replace("usd", " ").split()
    return all(word in ("per", "token", "tokens", "tok", "1") for word in words)


def _money(number: Decimal) -> str:
    """Money for people: "10", "2.50", "0.0001" (two decimals, more only where the price has
    them, none on whole amounts)."""
    whole, _, cents = f"{number.normalize():f}".partition(".")
    return f"{whole}.{cents.ljust(2, '0')}".removesuffix(".00")


def str_or_none(value: Any) -> str | None:
    """A field of an upstream JSON payload that should be text: the text, or None if it is
    missing, empty or of another type."""
    return value if isinstance(value, str) and value else None


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() and number >= 0 else None


@dataclass(frozen=True)
class ModelInfo:
    id: str
    public_id: str | None
    name: str
    pricing: Any  # kept exactly as upstream gave it (dict/str/None): stored with each reply
    price: Price  # the same, parsed
    provider: str | None = None  # as Nobox names it, else the id's prefix ("openai/gpt-4o")
    context_length: int | None = None  # tokens, when Nobox says


@dataclass(frozen=True)
class Timeouts:
    """Seconds. ``first_byte`` runs from sending the request to the first SSE event (or the
    whole body when not streaming); ``stall`` is the longest allowed gap between two events;
    ``total`` covers the whole call, retries and backoff included."""

    connect: float = 10.0
    first_byte: float = 60.0
    stall: float = 60.0
    total: float = 900.0


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3  # total attempts (1 = no retry)
    base_delay: float = 0.5  # exponential backoff base, full jitter
    max_delay: float = 8.0
    max_retry_after: float = 30.0  # a longer Retry-After is not waited for: raise RateLimited
