"""The viewer socket of a live share link (docs/protocol.md, "The share viewer socket").

Read-only by construction: it watches the link's conversation through the hub with a `Feed` of
its own (the same relay, offsets and resync as the chat socket, so no gap and no duplicate, in
any process) and answers `subscribe` and `ping`; every other frame is refused and changes
nothing. The link is checked when the socket opens and at every `subscribe`; a revocation or
deletion (`share_closed` on the bus, from any process), the link's expiry and its owner's
deactivation close it at once, and so do a switch to members-only links (for a stranger) and,
under members-only links, the viewer's own sign-out.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from chat import sharing
from chat.consumers import signed_out_code
from chat.database import in_db_pool
from chat.incoming_frames import FrameError, decode_frame, optional_int
from chat.languages import language_of_scope
from chat.models import ShareLink, ShareSettings, User, share_token_hash
from chat.ratelimit import TokenBucket
from chat.replies import events
from chat.replies.events import BusEvent
from chat.replies.feed import Feed
from chat.replies.hub import Hub, Listener, get_hub

log = logging.getLogger(__name__)

# A viewer has nothing to send but `subscribe` and `ping`.
MAX_VIEWER_FRAME_BYTES = 4096
READ_ONLY = gettext_lazy("This is a shared conversation: it can be read here, not written to.")
# Frames that carry no message, passed on as they are (the hot path); anything else is parsed
# and rewritten for the viewer. A frame not recognised here is parsed: safe, only slower.
_PASS_THROUGH = re.compile(r'^\{\s*"type"\s*:\s*"(?:delta|snapshot|hello|pong|error)"')


class ShareViewerConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    channel_layer_alias = "no channel layer"  # fed by the hub, like the chat socket

    hub: Hub
    feed: Feed
    link: ShareLink

    async def connect(self) -> None:
        self.language = language_of_scope(self.scope)  # once: what its error messages are in
        token = self.token = str(self.scope["url_route"]["kwargs"].get("token", ""))
        self.hub = await get_hub()
        self.listening: list[tuple[str, Listener]] = []
        # Refusals accept, then close with the documented code (as the chat socket does).
        await self.accept()
        # The feed first (closing goes through it), then listen, then read the policy and the
        # link: a revocation or a policy change committed in between is heard.
        self.feed = Feed(self.hub, self._send_for_viewer)
        await self._listen(events.share_channel(share_token_hash(token)), self._on_link_event)
        if self.viewer is None:
            await self._listen(events.share_policy_channel(), self._on_policy_event)
        refusal = await self._refusal(token)
        if refusal is not None:
            self._stop()
            await self.close(code=refusal)
            return
        # A deactivated owner's links stop opening (`subscribe` re-checks that too, covering a
        # deactivation between the read above and this); a viewer who signs out may be closed.
        await self._listen(events.user_channel(self.link.owner_id), self._on_owner_event)
        if self.viewer is not None:
            await self._listen(events.user_channel(self.viewer.pk), self._on_viewer_event)
        self.frame_budget = TokenBucket(settings.WS_FRAMES_PER_SECOND, settings.WS_FRAME_BURST)
        self.feed.queue_frame(events.hello_frame())
        if self.link.expires_at is not None:
            self.feed.spawn(self._close_at_expiry(self.link.expires_at.timestamp()))

    @property
    def viewer(self) -> User | None:
        user = self.scope.get("user")
        return user if isinstance(user, User) and user.is_authenticated else None

    async def _listen(self, channel: str, listener: Listener) -> None:
        self.listening.append((channel, listener))
        await self.hub.listen(channel, listener)

    async def _refusal(self, token: str) -> int | None:
        """Why this socket may not follow the link (a close code), or None."""
        # The policy before the token: a visitor who may not view learns nothing of the link.
        if self.viewer is None and not await _anyone_may_view():
            return events.CLOSE_SIGNED_OUT
        link = await _live_link(token)
        if link is None:
            return events.CLOSE_LINK_GONE
        self.link = link
        return None

    async def disconnect(self, code: int) -> None:
        self._stop()

    def _stop(self) -> None:
        """Stop listening and feeding (idempotent: a refused socket stops before it closes)."""
        for channel, listener in getattr(self, "listening", ()):
            self.hub.unlisten(channel, listener)
        self.listening = []
        if hasattr(self, "feed"):
            self.feed.close()
            del self.feed

    async def dispatch(self, message: dict[str, Any]) -> None:
        # As the chat consumer: no per-message database housekeeping on asgiref's thread.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # --- frames from the viewer ------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not hasattr(self, "feed"):
            return  # being closed
        with translation.override(self.language):
            await self._receive(text_data, bytes_data)

    async def _receive(self, text_data: str | None, bytes_data: bytes | None) -> None:
        try:
            frame = decode_frame(text_data, bytes_data, MAX_VIEWER_FRAME_BYTES)
            if self.frame_budget.take(time.monotonic()):
                raise FrameError("rate_limited", _("Too many frames at once: wait a moment."))
            if frame["type"] == "subscribe":
                await self._on_subscribe(frame)
            elif frame["type"] == "ping":
                self.feed.queue_frame(events.pong_frame())
            else:
                raise FrameError("read_only", str(READ_ONLY))
        except FrameError as error:
            self.feed.queue_frame(events.error_frame(error.code, error.message, {}))
        except Exception:
            log.exception("a share viewer's frame failed")
            self.feed.queue_frame(
                events.error_frame("internal_error", _("Something went wrong. Try again."), {})
            )

    async def _on_subscribe(self, frame: dict[str, Any]) -> None:
        after_seq = optional_int(frame, "after_seq") or 0
        # Checked again here: a reconnecting page after a lost `share_closed` finds out now.
        if await _live_link_by_pk(self.link.pk) is None:
            await self.close(code=events.CLOSE_LINK_GONE)
            return
        if self.viewer is None and not await _anyone_may_view():
            await self.close(code=events.CLOSE_SIGNED_OUT)
            return
        # As the chat socket's `subscribe`: watch (afresh), then read; what happens in between
        # arrives as events and is held until `history` is out.
        conversation = self.link.conversation
        await self.feed.watch(conversation.public_id, state_follows=True)
        await self.feed.send_state(conversation.public_id, after_seq)

    # --- what the viewer is sent ---------------------------------------------------------------

    async def _send_for_viewer(self, text: str) -> None:
        """Every frame goes out through here: messages lose what the owner did not choose to
        show (cost, usage, their error sentences) and the conversation's id."""
        if not _PASS_THROUGH.match(text):
            with translation.override(self.language):  # what it says instead of the owner
                frame = viewer_frame(json.loads(text), self.link.show_cost, self.token)
            text = json.dumps(frame)
        await self.send(text_data=text)

    # --- closing ---------------------------------------------------------------------------------

    def _on_link_event(self, event: BusEvent) -> None:
        if event["type"] == "share_closed":
            self._close_now()

    def _on_policy_event(self, event: BusEvent) -> None:
        if event["type"] == "share_closed":
            self._close_now(events.CLOSE_SIGNED_OUT)

    def _on_owner_event(self, event: BusEvent) -> None:
        # Sign-out of every session at once is a deactivation (chat.sign_out).
        if event["type"] == "sign_out" and event["session"] is None:
            self._close_now()

    def _on_viewer_event(self, event: BusEvent) -> None:
        if event["type"] in ("sign_out", "recheck") and hasattr(self, "feed"):
            self.feed.spawn(self._check_viewer())

    async def _check_viewer(self) -> None:
        """A viewer who is no longer signed in keeps following only where anyone may."""
        viewer = self.viewer
        if viewer is None:
            return
        code = await signed_out_code(
            viewer.pk, getattr(self.scope.get("session"), "session_key", None)
        )
        if code is not None and not await _anyone_may_view():
            await self.close(code=code)

    async def _close_at_expiry(self, at: float) -> None:
        await asyncio.sleep(max(0.0, at - timezone.now().timestamp()))
        self._close_now()

    def _close_now(self, code: int = events.CLOSE_LINK_GONE) -> None:
        if hasattr(self, "feed"):
            self.feed.spawn(self.close(code=code))


def viewer_frame(frame: dict[str, Any], show_cost: bool, token: str) -> dict[str, Any]:
    """A frame as a link's viewer gets it (see `_send_for_viewer`)."""
    frame.pop("conversation", None)
    if isinstance(frame.get("messages"), list):
        frame["messages"] = [sharing.for_viewer(m, show_cost, token) for m in frame["messages"]]
    if isinstance(frame.get("message"), dict):
        frame["message"] = sharing.for_viewer(frame["message"], show_cost, token)
    return frame


@in_db_pool
def _live_link(token: str) -> ShareLink | None:
    link = ShareLink.objects.for_token(token)
    return link if link is not None and link.kind == ShareLink.Kind.LIVE else None


@in_db_pool
def _live_link_by_pk(pk: int) -> ShareLink | None:
    return ShareLink.objects.usable().filter(pk=pk).first()


@in_db_pool
def _anyone_may_view() -> bool:
    return ShareSettings.current().anyone_may_view
