"""Plain data passed into and out of the Nobox client."""

from __future__ import annotations

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


@dataclass(frozen=True)
class Price:
    """USD per token, parsed once from the model list; None where Nobox did not say."""

    prompt: Decimal | None
    completion: Decimal | None

    @classmethod
    def parse(cls, pricing: Any) -> Price:
        """Tolerant: numbers or numeric strings under "prompt" and "completion"; anything else
        is unknown (never zero: an unknown price is not a free model)."""
        if not isinstance(pricing, dict):
            return cls(None, None)
        return cls(_decimal(pricing.get("prompt")), _decimal(pricing.get("completion")))

    def cost(self, usage: Usage | None) -> Decimal | None:
        if usage is None or self.prompt is None or self.completion is None:
            return None
        return self.prompt * usage.prompt_tokens + self.completion * usage.completion_tokens


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
