"""Plain data passed into and out of the Nobox client."""

from __future__ import annotations

from dataclasses import dataclass
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
class ModelInfo:
    id: str
    public_id: str | None
    name: str
    pricing: Any  # kept exactly as upstream gave it (dict/str/None)
    raw: dict[str, Any]  # the whole upstream object


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
