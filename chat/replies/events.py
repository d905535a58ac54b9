"""Every event of the relay, typed, and the only place they are built.

Two families:
- bus events travel between the parts of the system (generation → hub → sockets, and between
  processes over Redis pub/sub), on the channels named below;
- frames are what a socket sends the browser (docs/protocol.md).

| event      | built by     | consumed by                                                   |
|------------|--------------|---------------------------------------------------------------|
| `started`  | `started()`  | `Hub` → each watching socket → `messages` frame               |
| `delta`    | `delta()`    | `Hub` → each socket's `RelayCursor` → `delta` frame           |
| `snapshot` | `snapshot()` | `Hub` → each socket's `RelayCursor` → `snapshot`/`delta`      |
| `done`     | `done()`     | `Hub` → each watching socket → `done` frame                   |
| `branch`   | `branched()` | `Hub` → each watching socket → `history` from the fork        |
| `title`    | `titled()`   | `Hub` → each watching socket → `title` frame (chat.titles)    |
| `stop`     | `stop()`     | `Hub` → the generation of that reply, in its process          |
| `sync`     | `sync()`     | `Hub` → that generation, which answers with a `snapshot`      |
| `sign_out` | `sign_out()` | `Hub` → the user's sockets in every process: closed           |
| `recheck`  | `recheck()`  | `Hub` → the user's sockets: check their session again now     |
| `share_closed` | `share_closed()` | `Hub` listeners → a share link's viewer sockets: closed  |
"""

from __future__ import annotations

from typing import Literal, TypedDict, final

from chat.models import WireMessage

# --- close codes (docs/protocol.md) ------------------------------------------------------------

CLOSE_SIGNED_OUT = 4401  # no session, or it ended: the page says so and stops retrying
CLOSE_DEACTIVATED = 4403  # the account was deactivated
CLOSE_TOO_MANY_SOCKETS = 4429  # the user has WS_MAX_SOCKETS_PER_USER sockets open, all processes
CLOSE_LINK_GONE = 4404  # a share link's viewer: the link was revoked, expired or never existed

# --- channels (names on the bus) ----------------------------------------------------------------


def conversation_channel(conversation_id: str) -> str:
    """Every socket watching a conversation hears its replies here, in whichever process."""
    return f"conv:{conversation_id}"


def reply_channel(reply_id: str) -> str:
    """The process generating a reply listens here for `stop` and `sync`."""
    return f"reply:{reply_id}"


def user_channel(user_pk: int) -> str:
    """Every socket of a user listens here for `sign_out`."""
    return f"user:{user_pk}"


def share_channel(token_hash: str) -> str:
    """Every viewer socket of a share link listens here for `share_closed`. Named by the
    token's hash, which a viewer can compute before any database read (and which opens
    nothing)."""
    return f"share:{token_hash}"


def share_policy_channel() -> str:
    """Anonymous viewer sockets listen here: `share_closed` when links become members-only."""
    return "share:policy"


# --- bus events ----------------------------------------------------------------------------------


# The conversation events are @final (no other keys): `"reply" in event` then tells the events
# about one reply from those about the conversation (Hub._note), and the type checker follows.


@final
class StartedEvent(TypedDict):
    type: Literal["started"]
    conversation: str
    base: int  # the seq of the message the first of `messages` follows (0: none)
    messages: list[WireMessage]


@final
class DeltaEvent(TypedDict):
    type: Literal["delta"]
    reply: str
    offset: int
    text: str


@final
class SnapshotEvent(TypedDict):
    type: Literal["snapshot"]
    reply: str
    text: str


@final
class DoneEvent(TypedDict):
    type: Literal["done"]
    reply: str
    message: WireMessage


@final
class TitleEvent(TypedDict):
    """The conversation was named (chat.titles): also the frame its sockets get."""

    type: Literal["title"]
    conversation: str
    title: str


@final
class BranchEvent(TypedDict):
    """The person switched the conversation to another branch at message `base` (the last one
    the old and the new branch share): each socket reloads from there."""

    type: Literal["branch"]
    conversation: str
    base: int


class StopEvent(TypedDict):
    type: Literal["stop"]
    reply: str


class SyncEvent(TypedDict):
    type: Literal["sync"]
    reply: str


class SignOutEvent(TypedDict):
    type: Literal["sign_out"]
    # None: every session of the user (deactivation); else only sockets of that session.
    session: str | None
    code: int


class RecheckEvent(TypedDict):
    type: Literal["recheck"]


class ShareClosedEvent(TypedDict):
    type: Literal["share_closed"]


ConversationEvent = StartedEvent | DeltaEvent | SnapshotEvent | DoneEvent | TitleEvent | BranchEvent
ReplyEvent = StopEvent | SyncEvent
UserEvent = SignOutEvent | RecheckEvent
BusEvent = ConversationEvent | ReplyEvent | UserEvent | ShareClosedEvent


def started(conversation: str, base: int, messages: list[WireMessage]) -> StartedEvent:
    return {"type": "started", "conversation": conversation, "base": base, "messages": messages}


def branched(conversation: str, base: int) -> BranchEvent:
    return {"type": "branch", "conversation": conversation, "base": base}


def delta(reply: str, offset: int, text: str) -> DeltaEvent:
    return {"type": "delta", "reply": reply, "offset": offset, "text": text}


def snapshot(reply: str, text: str) -> SnapshotEvent:
    return {"type": "snapshot", "reply": reply, "text": text}


def done(message: WireMessage) -> DoneEvent:
    return {"type": "done", "reply": message["id"], "message": message}


def titled(conversation: str, title: str) -> TitleEvent:
    return {"type": "title", "conversation": conversation, "title": title}


def stop(reply: str) -> StopEvent:
    return {"type": "stop", "reply": reply}


def sync(reply: str) -> SyncEvent:
    return {"type": "sync", "reply": reply}


def sign_out(session: str | None, code: int) -> SignOutEvent:
    return {"type": "sign_out", "session": session, "code": code}


def recheck() -> RecheckEvent:
    """The user's password changed: every socket checks that its session still signs in."""
    return {"type": "recheck"}


def share_closed() -> ShareClosedEvent:
    """A share link was revoked or deleted: its viewers' sockets close now, in every process."""
    return {"type": "share_closed"}


# --- frames to the browser -----------------------------------------------------------------------


class HelloFrame(TypedDict):
    type: Literal["hello"]


class PongFrame(TypedDict):
    type: Literal["pong"]


class AckFrame(TypedDict):
    type: Literal["ack"]
    client_id: str
    conversation: str
    title: str
    duplicate: bool
    base: int
    messages: list[WireMessage]


# `base` in `ack`, `history` and `messages`: the page keeps the messages it holds up to that seq
# and drops any later one the frame does not bring (it was on another branch).


class HistoryFrame(TypedDict):
    type: Literal["history"]
    conversation: str
    base: int
    messages: list[WireMessage]


class MessagesFrame(TypedDict):
    type: Literal["messages"]
    conversation: str
    base: int
    messages: list[WireMessage]


class SnapshotFrame(TypedDict):
    type: Literal["snapshot"]
    reply: str
    text: str


class DeltaFrame(TypedDict):
    type: Literal["delta"]
    reply: str
    offset: int
    text: str


class DoneFrame(TypedDict):
    type: Literal["done"]
    reply: str
    message: WireMessage


class ErrorFrame(TypedDict, total=False):
    type: Literal["error"]
    code: str
    message: str
    client_id: str
    conversation: str
    retry_after: float


Frame = (
    HelloFrame
    | PongFrame
    | AckFrame
    | HistoryFrame
    | MessagesFrame
    | SnapshotFrame
    | DeltaFrame
    | DoneFrame
    | ErrorFrame
)


def hello_frame() -> HelloFrame:
    return {"type": "hello"}


def pong_frame() -> PongFrame:
    return {"type": "pong"}


def ack_frame(
    client_id: str,
    conversation: str,
    title: str,
    duplicate: bool,
    base: int,
    messages: list[WireMessage],
) -> AckFrame:
    return {
        "type": "ack",
        "client_id": client_id,
        "conversation": conversation,
        "title": title,
        "duplicate": duplicate,
        "base": base,
        "messages": messages,
    }


def history_frame(conversation: str, base: int, messages: list[WireMessage]) -> HistoryFrame:
    return {"type": "history", "conversation": conversation, "base": base, "messages": messages}


def messages_frame(conversation: str, base: int, messages: list[WireMessage]) -> MessagesFrame:
    return {"type": "messages", "conversation": conversation, "base": base, "messages": messages}


def snapshot_frame(reply: str, text: str) -> SnapshotFrame:
    return {"type": "snapshot", "reply": reply, "text": text}


def delta_frame(reply: str, offset: int, text: str) -> DeltaFrame:
    return {"type": "delta", "reply": reply, "offset": offset, "text": text}


def done_frame(event: DoneEvent) -> DoneFrame:
    return {"type": "done", "reply": event["reply"], "message": event["message"]}


def error_frame(
    code: str, message: str, ref: dict[str, str], retry_after: float | None = None
) -> ErrorFrame:
    frame: ErrorFrame = {"type": "error", "code": code, "message": message}
    if "client_id" in ref:
        frame["client_id"] = ref["client_id"]
    if "conversation" in ref:
        frame["conversation"] = ref["conversation"]
    if retry_after is not None:
        frame["retry_after"] = retry_after
    return frame
