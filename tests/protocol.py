"""The browser's side of docs/protocol.md, for both test clients (Channels' communicator in
tests/ws.py, real sockets in tests/stack.py): the `send` frame, and the reply texts a page shows,
rebuilt from the frames it gets the way static/chat/messages.js does."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any


def send_frame(
    text: str, model: str = "sim/echo", conversation: str | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "type": "send",
        "client_id": uuid.uuid4().hex,
        "conversation": conversation,
        "text": text,
        "model": model,
        **extra,
    }


@dataclass
class Page:
    """Each reply's text as the page shows it: upsert by id from `ack`/`history`/`messages`,
    `snapshot` replaces, `delta` appends at its offset, `done` replaces. A delta whose offset is
    not the current length is a gap or an overlap, and one for a reply never announced has
    nowhere to go: both are recorded as problems, not applied."""

    texts: dict[str, str] = field(default_factory=dict)  # reply id -> text the page shows
    streamed: dict[str, str] = field(default_factory=dict)  # reply id -> text when done came
    snapshots: dict[str, list[str]] = field(default_factory=dict)
    deltas: dict[str, int] = field(default_factory=dict)  # reply id -> deltas applied
    problems: list[str] = field(default_factory=list)

    def apply(self, frame: dict[str, Any]) -> None:
        kind = frame["type"]
        if kind in {"ack", "history", "messages"}:
            for message in frame["messages"]:
                self.texts[message["id"]] = message["content"]
        elif kind == "snapshot":
            self.texts[frame["reply"]] = frame["text"]
            self.snapshots.setdefault(frame["reply"], []).append(frame["text"])
        elif kind == "delta":
            self._append(frame)
        elif kind == "done":
            reply = frame["reply"]
            self.streamed[reply] = self.texts.get(reply, "")
            self.texts[reply] = frame["message"]["content"]

    def _append(self, frame: dict[str, Any]) -> None:
        reply = frame["reply"]
        if reply not in self.texts:
            self.problems.append(f"delta for a reply never announced: {frame}")
            return
        current = self.texts[reply]
        if frame["offset"] != len(current):
            self.problems.append(
                f"delta at offset {frame['offset']} onto {len(current)} characters "
                f"({'overlap' if frame['offset'] < len(current) else 'gap'}): {frame}"
            )
            return
        self.texts[reply] = current + frame["text"]
        self.deltas[reply] = self.deltas.get(reply, 0) + 1


def streamed_text(frames: list[dict[str, Any]], reply_id: str) -> str:
    """What a page following these frames showed for the reply while it streamed (up to its
    `done`, if one came); fails on any gap, overlap or unannounced delta."""
    page = Page()
    for frame in frames:
        page.apply(frame)
    assert not page.problems, page.problems
    return page.streamed.get(reply_id, page.texts.get(reply_id, ""))
