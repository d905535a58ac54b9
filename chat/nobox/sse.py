"""Server-sent events decoding: bytes in, events out, no I/O.

Follows the WHATWG "event stream interpretation" rules closely enough for an
OpenAI-compatible upstream, and tolerates every way a network can split the bytes.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

# One alternation so that a CRLF pair counts as a single terminator, not two lines.
_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class SSEEvent:
    event: str
    data: str
    id: str | None


class SSEDecoder:
    """Incremental decoder: call ``feed`` with each chunk as it arrives, ``close`` at EOF.

    Chunks may split a line, a CRLF pair, or a multibyte UTF-8 character anywhere;
    the events returned do not depend on where the splits fall.

    ``retry`` holds the last valid ``retry:`` value (milliseconds) seen, if any.
    """

    def __init__(self) -> None:
        # utf-8-sig drops one leading BOM even when it arrives split across chunks;
        # "replace" is what the SSE spec prescribes for invalid bytes.
        self._text = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        self._partial = ""  # text after the last line terminator
        self._skip_lf = False  # previous text ended with CR: a leading LF completes a CRLF
        self._event = ""
        self._data: list[str] = []
        self._last_id: str | None = None
        self.retry: int | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        return self._lines_to_events(self._split_lines(self._text.decode(chunk)))

    def close(self) -> list[SSEEvent]:
        """Flush at end of stream.

        An unterminated last line is a truncated write and is dropped. An event whose
        lines were all terminated but which lacks the closing blank line is dispatched:
        losing a complete ``data: [DONE]`` to a missing final newline helps nobody.
        """
        events = self._lines_to_events(self._split_lines(self._text.decode(b"", final=True)))
        self._partial = ""
        event = self._dispatch()
        return events + [event] if event is not None else events

    def _split_lines(self, text: str) -> list[str]:
        if self._skip_lf and text:
            self._skip_lf = False
            if text.startswith("\n"):
                text = text[1:]
        buffer = self._partial + text
        lines = _LINE_END.split(buffer)
        self._partial = lines.pop()
        if buffer.endswith("\r"):
            self._skip_lf = True
        return lines

    def _lines_to_events(self, lines: list[str]) -> list[SSEEvent]:
        events = []
        for line in lines:
            if line:
                self._process_field(line)
                continue
            event = self._dispatch()
            if event is not None:
                events.append(event)
        return events

    def _process_field(self, line: str) -> None:
        if line.startswith(":"):
            return  # comment, typically a keep-alive
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:  # the spec ignores such ids
                self._last_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)

    def _dispatch(self) -> SSEEvent | None:
        # An event without any data line is not dispatched, per the spec; the id persists.
        event = None
        if self._data:
            event = SSEEvent(
                event=self._event or "message", data="\n".join(self._data), id=self._last_id
            )
        self._event = ""
        self._data = []
        return event
