"""A logging filter that keeps secrets out of every log line, tracebacks included.

Tokens are never logged on purpose, but third-party code does not know that: an httpx header
encoding error's repr holds the whole `Authorization` header, and asyncio logs a failed task with
its exception's repr. The filter is installed on every handler (settings.LOGGING), so whatever
slips through is redacted before it is written. No Django or model imports: logging is configured
before the app registry is ready.
"""

from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"

PATTERNS = [
    # "Bearer <anything>" up to the end of the quoted string or word that holds it.
    re.compile(r"(?i)(\bbearer\s+)[^\s'\"`,;)}\]]+"),
    # Authorization header values in reprs of header lists and dicts.
    re.compile(r"(?i)(\bauthorization['\"]?\s*[:=,]\s*\(?\s*b?['\"])[^'\"]+"),
    # Key-shaped strings (sk-…, as OpenAI-compatible providers issue them).
    re.compile(r"(?<![\w-])(sk-)[A-Za-z0-9_\-\u2010-\u2015]{6,}"),
]


def redact(text: str) -> str:
    for pattern in PATTERNS:
        text = pattern.sub(rf"\g<1>{REDACTED}", text)
    return text


class RedactSecretsFilter(logging.Filter):
    """Rewrites the record in place, message and exception text alike; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when set, so the traceback is written redacted.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
