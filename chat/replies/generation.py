"""The running generation: one assistant reply being written, owned by the process (not by a
socket: closing the tab does not stop it).

It streams from Nobox, coalesces the text into pieces and publishes them through the hub (no
await on the hot path: publishing only hands the piece to sockets and queues it for the bus),
checkpoints the text at a bounded rate (the checkpoint is also the heartbeat), and ends with
exactly one final write, retried while the process lives, before `done` is announced.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import aclosing

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from chat import titles, tokens
from chat.database import in_db_pool
from chat.models import Message
from chat.nobox import ChatRequest, Completed, Delta, InvalidToken, ModelInfo, NoboxError
from chat.replies import events
from chat.replies.hub import Hub, get_hub
from chat.replies.relay import Coalescer, LoopDelay, Piece, flush_interval
from chat.replies.turns import Turn
from chat.replies.writes import Ending, Outcome, checkpoints, final_writes
from chat.shutdown import on_shutdown
from chat.upstream import explain, model_info, nobox_client

log = logging.getLogger(__name__)

Status = Message.Status

# How late this process's event loop runs the generations' flush timers: the coalescing interval
# grows with it (relay.flush_interval).
loop_delay = LoopDelay()

# Strong references to this process's running generations: asyncio keeps only weak ones.
_running: dict[str, asyncio.Task[None]] = {}

# Final-write retry backoff (seconds): the text is in memory, so keep trying while we live, and
# often enough that the write lands soon after the database is back.
FINAL_WRITE_DELAYS = (0.0, 0.1, 0.25, 0.5, 1.0)


REFUSED_WRITE = Outcome(
    Status.ERROR,
    error_code="internal_error",
    error_message=gettext_lazy(
        "Something went wrong on our side while saving this reply. The text is kept."
    ),
)

SHUTDOWN = Outcome(
    Status.INTERRUPTED,
    error_code="interrupted",
    error_message=gettext_lazy(
        "The server was restarted while writing this reply. The text so far is kept."
    ),
)


async def start(turn: Turn) -> None:
    """Announce the new turn to every watcher and start generating the reply."""
    assert turn.request is not None and turn.token is not None and turn.shown is not None
    hub = await get_hub()
    conversation = turn.conversation.public_id
    hub.publish(conversation, events.started(conversation, turn.base, turn.shown))
    # The reply's versions cannot change while it is written (a new version of it, or of its
    # question, would be a second reply at once: refused as busy), so `done` carries these.
    versions = turn.shown[-1]["versions"]
    generation = Generation(hub, turn.reply.pk, turn.reply.public_id, conversation, versions)
    task = asyncio.create_task(
        generation.run(turn.request, turn.token), name=f"reply {generation.reply_id}"
    )
    _running[generation.reply_id] = task
    on_shutdown("interrupt running replies", interrupt_running)
    task.add_done_callback(lambda _: _running.pop(generation.reply_id, None))


async def wait_for_running() -> None:
    """Wait for every generation of this process to finish (tests, graceful shutdown)."""
    while _running:
        await asyncio.gather(*list(_running.values()), return_exceptions=True)


async def interrupt_running() -> None:
    """Cancel this process's generations; each keeps its text and ends `interrupted`."""
    for task in list(_running.values()):
        task.cancel()
    await wait_for_running()


class Generation:
    def __init__(
        self,
        hub: Hub,
        reply_pk: int,
        reply_id: str,
        conversation_id: str,
        versions: list[str] | None = None,
    ) -> None:
        self.hub = hub
        self.reply_pk = reply_pk
        self.reply_id = reply_id
        self.conversation_id = conversation_id
        self.versions = versions or []
        # Read once: the lazy settings proxy costs more than the arithmetic it feeds.
        self._interval = (settings.REPLY_FLUSH_INTERVAL, settings.REPLY_FLUSH_LONGEST)
        self.text = Coalescer(
            flush_interval(self._interval[0], loop_delay.value, self._interval[1])
        )
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0  # when the timer was meant to run
        self._stream_task: asyncio.Task[Outcome] | None = None
        self._stopped = False

    # --- what the hub asks of a generation -----------------------------------------------------

    def stop(self) -> None:
        self._stopped = True
        if self._stream_task is not None:
            self._stream_task.cancel()

    def published_text(self) -> str:
        return self.text.published_text

    # --- the run -------------------------------------------------------------------------------

    async def run(self, request: ChatRequest, token: tokens.UsableToken) -> None:
        await self.hub.register(self)
        # Checkpointed (and so heart-beating) until the final write has landed, so no other
        # process takes a finished but not yet written reply for an orphan.
        checkpoints.add(self)
        pricing = asyncio.create_task(model_info(token.token, request.model))
        self._stream_task = asyncio.create_task(self._stream(request, token))
        if self._stopped:
            self._stream_task.cancel()  # a stop that came while registering
        shutting_down = False
        try:
            outcome = await self._outcome()
            price = await _price(pricing)
        except asyncio.CancelledError:
            # The process is shutting down: keep the text, mark it interrupted, then go.
            log.warning("reply %s cancelled with its process: marked interrupted", self.reply_id)
            self._stream_task.cancel()
            outcome, price, shutting_down = SHUTDOWN, None, True
        write = asyncio.ensure_future(self._final_write(outcome, price))
        try:
            message = await asyncio.shield(write)
        except asyncio.CancelledError:
            shutting_down = True
            message = await write  # a write under way finishes; its truth is kept
        finally:
            checkpoints.discard(self)
            pricing.cancel()
            self.hub.unregister(self)
        self._announce(message)
        if shutting_down:
            raise asyncio.CancelledError
        titles.start(self.hub, message, token)

    async def _outcome(self) -> Outcome:
        assert self._stream_task is not None
        await asyncio.wait({self._stream_task})
        if self._stream_task.cancelled():
            return Outcome(Status.STOPPED)
        return self._stream_task.result()

    async def _stream(self, request: ChatRequest, token: tokens.UsableToken) -> Outcome:
        try:
            # aclosing: a stop cancels this task, and the upstream response must be released at
            # once (Nobox stops generating, and billing, when the connection closes).
            async with aclosing(nobox_client().stream_chat(token.token, request)) as stream:
                async for event in stream:
                    if isinstance(event, Delta):
                        if self._add(event.text):
                            # Let sockets write it now even when upstream bytes are already
                            # buffered and this loop would otherwise run on without yielding.
                            await asyncio.sleep(0)
                    elif isinstance(event, Completed):
                        return _completed(event)
        except NoboxError as error:
            if isinstance(error, InvalidToken):
                await in_db_pool(tokens.mark_rejected)(token.record_pk)
            return Outcome(Status.ERROR, error_code=error.code, error_message=explain(error))
        except Exception:
            log.exception("reply %s failed", self.reply_id)
            return Outcome(
                Status.ERROR,
                error_code="internal_error",
                error_message=_("Something went wrong on our side. Retry in a moment."),
            )
        # The client raises IncompleteStream for a stream without [DONE]; returning without
        # Completed breaks its contract, so it is treated the same way.
        return Outcome(
            Status.ERROR,
            error_code="incomplete_stream",
            error_message=_("The answer ended early. The text so far is kept."),
        )

    # --- publishing ----------------------------------------------------------------------------

    def _add(self, text: str) -> bool:
        """Take upstream text; True when a piece went out at once."""
        now = time.monotonic()
        piece = self.text.add(text, now)
        if piece is not None:
            self._publish(piece)
            return True
        if self._timer is None:
            delay = max(self.text.flush_delay(now), 0)
            self._due = now + delay
            self._timer = asyncio.get_running_loop().call_later(delay, self._on_timer)
        return False

    def _on_timer(self) -> None:
        # How late the timer ran is the loop's delay; the next pieces wait accordingly (only a
        # reply whose text comes faster than the interval arms timers, and only it needs one).
        loop_delay.observe(time.monotonic() - self._due)
        base, longest = self._interval
        self.text.interval = flush_interval(base, loop_delay.value, longest)
        self._flush()

    def _flush(self) -> None:
        self._timer = None
        piece = self.text.flush(time.monotonic())
        if piece is not None:
            self._publish(piece)

    def _publish(self, piece: Piece) -> None:
        self.hub.publish(
            self.conversation_id, events.delta(self.reply_id, piece.offset, piece.text)
        )

    def _announce(self, message: Message) -> None:
        self.hub.publish(self.conversation_id, events.done(message.to_wire(self.versions)))

    # --- the database --------------------------------------------------------------------------

    async def _final_write(self, outcome: Outcome, price: ModelInfo | None) -> Message:
        """The one final write; pending text is published first so `done` follows every piece.
        Retried while the process lives: the text exists only in memory until it lands."""
        if self._timer is not None:
            self._timer.cancel()
        self._flush()
        attempt = 0
        while True:
            try:
                ending = Ending(self.reply_pk, self.text.text, outcome, price)
                return await final_writes().submit(ending)
            except (OperationalError, InterfaceError) as error:
                delay = FINAL_WRITE_DELAYS[min(attempt, len(FINAL_WRITE_DELAYS) - 1)]
                log.warning(
                    "final write of reply %s failed (%s); retrying in %.1f s",
                    self.reply_id,
                    error,
                    delay,
                )
                attempt += 1
                await asyncio.sleep(delay)
            except DatabaseError:
                # The database refused these values (not an outage): retrying cannot help.
                # End the reply as failed, without the usage and price that may be at fault.
                log.exception(
                    "final write of reply %s refused; ending it as an error", self.reply_id
                )
                outcome, price = REFUSED_WRITE, None


def _completed(event: Completed) -> Outcome:
    status = Status.TRUNCATED if event.finish_reason == "length" else Status.COMPLETE
    return Outcome(status, finish_reason=event.finish_reason or "", usage=event.usage)


async def _price(task: asyncio.Task[ModelInfo | None]) -> ModelInfo | None:
    try:
        return await asyncio.wait_for(task, timeout=5)
    except (TimeoutError, NoboxError):
        return None
