"""Sans-I/O pieces of the relay: no clocks, sockets or tasks inside, so every case is unit-tested.

- `Coalescer` turns a generation's many small upstream deltas into few frames with offsets.
- `RelayCursor` is what one socket has been sent of one streaming reply: it turns deltas and
  snapshots arriving in any order, twice or with holes into text that follows on exactly.

Offsets count Unicode code points from the start of the reply's text.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Piece:
    """Text that starts at `offset` in a reply."""

    offset: int
    text: str

    @property
    def end(self) -> int:
        return self.offset + len(self.text)


class Coalescer:
    """Collects upstream text and decides when it goes out as one piece.

    The first text, and text arriving after a quiet spell of `interval`, goes out at once (time to
    first token matters); text arriving faster waits until `interval` after the last piece, so a
    fast model costs one frame per interval, not one per token.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._published: list[str] = []
        self.published_length = 0
        self._pending: list[str] = []
        self._last_flush: float | None = None

    @property
    def published_text(self) -> str:
        """Everything handed out as pieces so far (what a snapshot may show)."""
        if len(self._published) > 1:
            self._published[:] = ["".join(self._published)]
        return self._published[0] if self._published else ""

    @property
    def text(self) -> str:
        """All text received, published or not (what the database keeps)."""
        return self.published_text + "".join(self._pending)

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    def add(self, text: str, now: float) -> Piece | None:
        """Take upstream text; returns a piece to publish now, or None to wait for `due`."""
        if not text:
            return None
        self._pending.append(text)
        if self.flush_delay(now) <= 0:
            return self.flush(now)
        return None

    def flush_delay(self, now: float) -> float:
        """Seconds until pending text may go out (0 or less: now)."""
        if self._last_flush is None:
            return 0.0
        return self._last_flush + self.interval - now

    def flush(self, now: float) -> Piece | None:
        """Everything pending as one piece, or None when nothing is pending."""
        if not self._pending:
            return None
        chunk = "".join(self._pending)
        self._pending.clear()
        piece = Piece(self.published_length, chunk)
        self._published.append(chunk)
        self.published_length += len(chunk)
        self._last_flush = now
        return piece


class LoopDelay:
    """How late the event loop runs timers, smoothed (an exponentially weighted mean of the
    lateness observed): 0 on a process that keeps up, tens of milliseconds on one that does
    not."""

    def __init__(self, weight: float = 0.1) -> None:
        self.weight = weight
        self.value = 0.0

    def observe(self, late: float) -> None:
        self.value += self.weight * (max(late, 0.0) - self.value)


def flush_interval(base: float, loop_delay: float, longest: float) -> float:
    """The coalescing interval: `base` while the process keeps up, longer by twice its loop
    delay when it does not, up to `longest`.

    Every frame costs the same on its way out (JSON, the WebSocket framing, a write per
    socket), so a process that falls behind sends fewer, larger frames and catches up, where
    one that kept sending every piece would fall further behind: a piece every 100 ms still
    reads as streaming, a backlog of seconds does not. A process that keeps up pays nothing:
    its pieces go at `base`, whatever the number of replies.
    """
    return min(longest, base + 2 * loop_delay)


@dataclass(frozen=True)
class Snapshot:
    """Replace the reply's text with `text` (the socket had nothing of it)."""

    text: str


Output = Piece | Snapshot


@dataclass
class RelayCursor:
    """What one socket has been sent of one reply, and what to send it next.

    `sent` is None until the socket has a starting point (a snapshot, or a reply it saw start at
    offset 0). Pieces that cannot follow on yet (no starting point, or a hole before them) are
    held; `needs_sync` says the socket is missing text that only a snapshot can fill.
    """

    sent: int | None = None
    held: list[Piece] = field(default_factory=list)
    needs_sync: bool = False

    @classmethod
    def from_start(cls) -> RelayCursor:
        """A socket that watched the reply start: it has the empty text."""
        return cls(sent=0)

    def on_piece(self, piece: Piece) -> list[Output]:
        if self.sent is None:
            self.held.append(piece)
            return []
        if piece.end <= self.sent:
            return []  # a duplicate: already sent
        if piece.offset > self.sent:
            # A hole before it (a lost or reordered piece): hold it and ask for a snapshot.
            self.held.append(piece)
            self.needs_sync = True
            return []
        return self._advance(piece)

    def on_snapshot(self, text: str) -> list[Output]:
        """The reply's text from offset 0 up to some point; fills whatever the socket lacks."""
        out: list[Output] = []
        if self.sent is None:
            out.append(Snapshot(text))
            self.sent = len(text)
        elif len(text) > self.sent:
            out.extend(self._advance(Piece(0, text)))
        self.needs_sync = False
        return out + self._drain()

    def rewind(self, offset: int) -> None:
        """Frames from `offset` on were never delivered (dropped by an overflowing socket)."""
        if self.sent is not None and offset < self.sent:
            self.sent = offset
            self.needs_sync = True

    def _advance(self, piece: Piece) -> list[Output]:
        assert self.sent is not None
        out: list[Output] = [Piece(self.sent, piece.text[self.sent - piece.offset :])]
        self.sent = piece.end
        return out + self._drain()

    def _drain(self) -> list[Output]:
        """Send held pieces that now follow on; drop those already covered."""
        out: list[Output] = []
        progress = True
        while progress and self.held and self.sent is not None:
            progress = False
            for piece in sorted(self.held, key=lambda p: p.offset):
                if piece.end <= self.sent:
                    self.held.remove(piece)
                    progress = True
                elif piece.offset <= self.sent:
                    self.held.remove(piece)
                    out.append(Piece(self.sent, piece.text[self.sent - piece.offset :]))
                    self.sent = piece.end
                    progress = True
        if self.held and self.sent is not None:
            self.needs_sync = True  # what is still held sits beyond a hole
        elif not self.held and self.sent is not None:
            self.needs_sync = False
        return out
