"""Typed errors for the Nobox client, and the pure mapping from upstream replies to them.

Every message that reaches an error goes through ``_clean``, which strips the caller's
token: an upstream is free to echo the bad token back in its error text, and our errors
end up in logs and in front of users.
"""

from __future__ import annotations

import json
import re
from email.utils import parsedate_to_datetime
from typing import Any, Literal

from .types import str_or_none

TimeoutPhase = Literal["connect", "first_byte", "stall", "total"]

_MAX_MESSAGE = 500
_SECONDS = re.compile(r"\d+(\.\d+)?")


class NoboxError(Exception):
    """Base class. ``code`` is stable and machine-readable; ``message`` is safe to show."""

    code: str = "nobox_error"

    def __init__(
        self, message: str, *, status: int | None = None, upstream_type: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.upstream_type = upstream_type

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, status={self.status!r}, "
            f"upstream_type={self.upstream_type!r}, message={self.message!r})"
        )


class InsufficientFunds(NoboxError):
    code = "insufficient_funds"


class BadRequest(NoboxError):
    code = "bad_request"


class InvalidToken(NoboxError):
    code = "invalid_token"


class ModelNotFound(NoboxError):
    code = "model_not_found"


class RateLimited(NoboxError):
    code = "rate_limited"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        upstream_type: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, upstream_type=upstream_type)
        self.retry_after = retry_after


class UpstreamError(NoboxError):
    code = "upstream_error"


class MalformedResponse(NoboxError):
    code = "malformed_response"


class IncompleteStream(NoboxError):
    code = "incomplete_stream"


class NoboxTimeout(NoboxError):
    code = "timeout"

    def __init__(self, phase: TimeoutPhase, message: str | None = None) -> None:
        super().__init__(message or _TIMEOUT_MESSAGES[phase])
        self.phase: TimeoutPhase = phase


class ConnectionFailed(NoboxError):
    code = "connection_failed"


_TIMEOUT_MESSAGES: dict[TimeoutPhase, str] = {
    "connect": "could not connect to Nobox in time",
    "first_byte": "Nobox did not start answering in time",
    "stall": "the Nobox reply stalled",
    "total": "the Nobox request took too long overall",
}

_CLASS_BY_TYPE: dict[str, type[NoboxError]] = {
    "insufficient_funds": InsufficientFunds,
    "invalid_token": InvalidToken,
    "authentication_error": InvalidToken,
    "model_not_found": ModelNotFound,
    "rate_limit_exceeded": RateLimited,
    "rate_limited": RateLimited,
}


def error_from_response(
    status: int, body: bytes, retry_after: str | None, *, secret: str, now: float
) -> NoboxError:
    """Map a non-2xx HTTP reply. ``now`` (unix time) resolves an HTTP-date Retry-After."""
    payload = _json_or_none(body)
    if payload is None:
        return _from_non_json(status, secret)
    upstream_type, upstream_code, message = _describe(payload)
    cls = (
        _class_for_type(upstream_type, upstream_code)
        or _class_for_status(status)
        or MalformedResponse
    )
    text = _clean(message or f"Nobox answered HTTP {status}", secret)
    if cls is RateLimited:
        seconds = parse_retry_after(retry_after, now)
        return RateLimited(text, status=status, upstream_type=upstream_type, retry_after=seconds)
    return cls(text, status=status, upstream_type=upstream_type)


def error_from_payload(payload: dict[str, Any], *, secret: str) -> NoboxError:
    """Map an ``{"error": ...}`` object that arrived in a successful (2xx) reply or stream.

    There is no HTTP status to fall back on, so an unknown type means upstream trouble.
    """
    upstream_type, upstream_code, message = _describe(payload)
    cls = _class_for_type(upstream_type, upstream_code) or UpstreamError
    return cls(_clean(message or "Nobox reported an error", secret), upstream_type=upstream_type)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None."""
    if value is None:
        return None
    value = value.strip()
    if _SECONDS.fullmatch(value):
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - now)


def _from_non_json(status: int, secret: str) -> NoboxError:
    # A proxy or load balancer page (HTML) rather than Nobox itself: say so, keep the status.
    if status >= 500:
        return UpstreamError(f"Nobox answered HTTP {status} with a non-JSON body", status=status)
    cls = _class_for_status(status) or MalformedResponse
    return cls(_clean(f"Nobox answered HTTP {status} with a non-JSON body", secret), status=status)


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:  # also covers UnicodeDecodeError
        return None


def _describe(payload: Any) -> tuple[str | None, str | None, str | None]:
    """(error type, error code, message) from the usual shapes: {"error": {...}},
    {"error": "..."}, {"message": "..."} or {"detail": "..."}."""
    if not isinstance(payload, dict):
        return None, None, None
    error = payload.get("error")
    if isinstance(error, dict):
        kind, code = str_or_none(error.get("type")), str_or_none(error.get("code"))
        return kind, code, str_or_none(error.get("message"))
    if isinstance(error, str):
        return None, None, error
    message = str_or_none(payload.get("message")) or str_or_none(payload.get("detail"))
    return None, None, message


def _class_for_type(
    upstream_type: str | None, upstream_code: str | None
) -> type[NoboxError] | None:
    # OpenAI-style bodies put a broad class in "type" and the precise reason in "code"
    # (type "invalid_request_error", code "model_not_found"): either may be the one we know.
    for name in (upstream_type, upstream_code):
        if name in _CLASS_BY_TYPE:
            return _CLASS_BY_TYPE[name]
    return None


def _class_for_status(status: int) -> type[NoboxError] | None:
    if status in (401, 403):
        return InvalidToken
    if status == 404:
        return ModelNotFound
    if status == 429:
        return RateLimited
    if 400 <= status < 500:
        return BadRequest
    if status >= 500:
        return UpstreamError
    return None


def _clean(message: str, secret: str) -> str:
    if secret:
        message = message.replace(secret, "[redacted]")
    return message[:_MAX_MESSAGE]
