"""Client for the Nobox API (OpenAI-compatible chat completions). No Django in here."""

from __future__ import annotations

from .client import NoboxClient
from .errors import (
    BadRequest,
    ConnectionFailed,
    IncompleteStream,
    InsufficientFunds,
    InvalidToken,
    MalformedResponse,
    ModelNotFound,
    NoboxError,
    NoboxTimeout,
    RateLimited,
    TimeoutPhase,
    UpstreamError,
)
from .sse import SSEDecoder, SSEEvent
from .types import (
    ChatRequest,
    Completed,
    Completion,
    Delta,
    ModelInfo,
    Price,
    RetryPolicy,
    Timeouts,
    Usage,
)

__all__ = [
    "BadRequest",
    "ChatRequest",
    "Completed",
    "Completion",
    "ConnectionFailed",
    "Delta",
    "IncompleteStream",
    "InsufficientFunds",
    "InvalidToken",
    "MalformedResponse",
    "ModelInfo",
    "Price",
    "ModelNotFound",
    "NoboxClient",
    "NoboxError",
    "NoboxTimeout",
    "RateLimited",
    "RetryPolicy",
    "SSEDecoder",
    "SSEEvent",
    "TimeoutPhase",
    "Timeouts",
    "UpstreamError",
    "Usage",
]
