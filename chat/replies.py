"""The reply workflow: store the user's message, generate the answer, relay it, store it.

One function owns each step so the consumer (and later the HTTP API) only translate frames:

- `store_send` validates ownership, token and busy state, and in one transaction stores the user
  message and an assistant placeholder (status `streaming`). Nothing upstream happens before it.
- `launch` announces the new messages and starts a `Generation` task owned by the process, not by
  the socket: closing the socket does not stop it.
- `Generation` streams from Nobox, publishes coalesced deltas with character offsets to the
  conversation's group, answers `sync` requests with the text so far, obeys `stop` from any
  process, checkpoints to the database at a bounded rate, and ends with exactly one final write.
- `sweep_orphans` turns replies whose process died into `interrupted` rows that keep their text.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import aclosing
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from channels.layers import BaseChannelLayer, get_channel_layer
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from chat import tokens
from chat.access import NotFound, conversation_for
from chat.asyncdb import db_sync, db_sync_apart
from chat.frames import FrameError, SendRequest
from chat.models import Conversation, Message, NoboxToken, User
from chat.nobox import ChatRequest, Completed, Delta, InvalidToken, NoboxError, Usage
from chat.shutdown import on_shutdown
from chat.upstream import explain, nobox_client, pricing_for

log = logging.getLogger(__name__)

Status = Message.Status


def conversation_group(conversation_public_id: str) -> str:
    """Every socket watching a conversation is in this group, in whichever process it lives."""
    return f"conv.{conversation_public_id}"


def control_group(reply_public_id: str) -> str:
    """The generating task listens here for `stop` and `sync`, from whichever process."""
    return f"reply.{reply_public_id}"


# --- storing the user's message ----------------------------------------------------------------


@dataclass
class Started:
    conversation: Conversation
    user_message: Message
    reply: Message
    duplicate: bool
    request: ChatRequest | None = None
    token: tokens.Resolved | None = None


def store_send(user: User, req: SendRequest) -> Started:
    """Validate and store a `send`; raise FrameError when it cannot be accepted.

    A resent frame (same client_id) returns the stored messages with duplicate=True: it never
    creates a second message or a second upstream call.
    """
    existing = _find_sent(user, req.client_id)
    if existing is not None:
        return existing
    token = _token_or_error(user)
    try:
        with transaction.atomic():
            conversation = _locked_conversation(user, req)
            if conversation.messages.filter(status=Status.STREAMING).exists():
                raise FrameError("busy", "A reply is still being written in this conversation.")
            _apply_settings(conversation, req)
            user_message, reply = _add_turn(conversation, req, token.source)
            NoboxToken.objects.filter(pk=token.record_pk).update(
                last_used_at=user_message.created_at
            )
            request = ChatRequest(
                model=conversation.model,
                messages=prompt_for(conversation),
                temperature=conversation.temperature,
                max_tokens=conversation.max_tokens,
            )
    except IntegrityError as exc:
        # Another process stored the same client_id or started a reply a moment ago.
        existing = _find_sent(user, req.client_id)
        if existing is not None:
            return existing
        raise FrameError("busy", "A reply is still being written in this conversation.") from exc
    return Started(conversation, user_message, reply, False, request, token)


def _find_sent(user: User, client_id: str) -> Started | None:
    sent = (
        Message.objects.filter(
            conversation__owner=user, client_id=client_id, role=Message.Role.USER
        )
        .select_related("conversation")
        .first()
    )
    if sent is None:
        return None
    reply = sent.conversation.messages.filter(seq=sent.seq + 1).first()
    if reply is None:
        return None
    return Started(sent.conversation, sent, reply, duplicate=True)


def _token_or_error(user: User) -> tokens.Resolved:
    # Expired, revoked, rejected or unreadable tokens stop here, before anything is stored or
    # sent, with a message that says how to fix it.
    try:
        return tokens.resolve(user)
    except tokens.TokenProblem as problem:
        raise FrameError(problem.code, problem.message) from problem


def _locked_conversation(user: User, req: SendRequest) -> Conversation:
    if req.conversation_id is None:
        return Conversation.objects.create(owner=user, title=_title_from(req.text))
    try:
        conversation = conversation_for(user, req.conversation_id)
    except NotFound as exc:
        raise FrameError("not_found", "No such conversation.") from exc
    # The row lock serialises concurrent sends to one conversation (PostgreSQL); SQLite's
    # IMMEDIATE transactions already serialise all writers.
    return Conversation.objects.select_for_update().get(pk=conversation.pk)


def _title_from(text: str) -> str:
    line = " ".join(text.split())
    return line[:80] if line else "Attachment"


def _apply_settings(conversation: Conversation, req: SendRequest) -> None:
    conversation.model = req.model
    if req.system_prompt is not None:
        conversation.system_prompt = req.system_prompt
    conversation.temperature = req.temperature
    conversation.max_tokens = req.max_tokens


def _add_turn(
    conversation: Conversation, req: SendRequest, token_source: str
) -> tuple[Message, Message]:
    now = timezone.now()
    seq = conversation.next_seq
    user_message = Message.objects.create(
        conversation=conversation,
        seq=seq,
        role=Message.Role.USER,
        content=req.text,
        attachments=req.attachments,
        client_id=req.client_id,
        created_at=now,
    )
    reply = Message.objects.create(
        conversation=conversation,
        seq=seq + 1,
        role=Message.Role.ASSISTANT,
        model=req.model,
        token_source=token_source,
        status=Status.STREAMING,
        created_at=now,
        heartbeat_at=now,
    )
    conversation.next_seq = seq + 2
    conversation.updated_at = now
    conversation.save(
        update_fields=[
            "model",
            "system_prompt",
            "temperature",
            "max_tokens",
            "next_seq",
            "updated_at",
        ]
    )
    return user_message, reply


def prompt_for(conversation: Conversation) -> list[dict[str, Any]]:
    """The conversation in OpenAI wire format: system prompt, then every kept turn."""
    messages: list[dict[str, Any]] = []
    if conversation.system_prompt:
        messages.append({"role": "system", "content": conversation.system_prompt})
    for message in conversation.messages.exclude(status=Status.STREAMING).order_by("seq"):
        if message.role == Message.Role.ASSISTANT and not message.content:
            continue  # a failed reply with no text says nothing to the model
        messages.append({"role": message.role, "content": _wire_content(message)})
    return messages


def _wire_content(message: Message) -> str | list[dict[str, Any]]:
    if not message.attachments:
        return message.content
    parts: list[dict[str, Any]] = []
    if message.content:
        parts.append({"type": "text", "text": message.content})
    parts.extend(message.attachments)
    return parts


# --- running the reply -------------------------------------------------------------------------

# Strong references to running generations: asyncio keeps only weak ones to tasks.
_running: dict[str, asyncio.Task[None]] = {}


async def launch(started: Started) -> None:
    """Announce the new turn to every watcher and start generating the reply."""
    assert started.request is not None and started.token is not None
    layer = get_channel_layer()
    assert layer is not None
    await layer.group_send(
        conversation_group(started.conversation.public_id),
        {
            "type": "reply.started",
            "conversation": started.conversation.public_id,
            "messages": [started.user_message.to_wire(), started.reply.to_wire()],
        },
    )
    generation = Generation(
        layer,
        started.conversation.public_id,
        started.conversation.pk,
        started.reply.pk,
        started.reply.public_id,
        started.request,
        started.token,
    )
    task = asyncio.create_task(generation.run(), name=f"reply {started.reply.public_id}")
    _running[started.reply.public_id] = task
    on_shutdown("interrupt running replies", interrupt_running)
    task.add_done_callback(lambda _: _running.pop(started.reply.public_id, None))


async def wait_for_running() -> None:
    """Wait for every generation of this process to finish (tests, graceful shutdown)."""
    while _running:
        await asyncio.gather(*list(_running.values()), return_exceptions=True)


async def interrupt_running() -> None:
    """Cancel this process's generations; each keeps its text and ends `interrupted`."""
    for task in list(_running.values()):
        task.cancel()
    await wait_for_running()


async def request_stop(reply_public_id: str) -> None:
    layer = get_channel_layer()
    assert layer is not None
    await layer.group_send(control_group(reply_public_id), {"type": "reply.stop"})


async def request_sync(reply_public_id: str, reply_to: str) -> None:
    layer = get_channel_layer()
    assert layer is not None
    await layer.group_send(
        control_group(reply_public_id), {"type": "reply.sync", "reply_to": reply_to}
    )


@dataclass
class Outcome:
    status: str
    finish_reason: str = ""
    usage: Usage | None = None
    error_code: str = ""
    error_message: str = ""


# How long a finished reply waits for its helper tasks to wind down before it moves on.
HELPER_GRACE_SECONDS = 2.0

# An outbox item: ("group", group name, event) or ("send", channel name, event).
Outgoing = tuple[str, str, dict[str, Any]]


class Generation:
    """One assistant reply being written. Lives in the process that started it.

    Tasks: the upstream stream (cancelled by `stop`), a control listener (`stop`, `sync`), a
    flush timer, a checkpointer, and one sender that owns every channel-layer send. Sends go
    through the sender's queue in order and are never cancelled half-way, so a socket always
    gets every delta before `done`; helpers stop cooperatively and are waited for only briefly,
    so nothing in a channel layer can hold up the final write.
    """

    def __init__(
        self,
        layer: BaseChannelLayer,
        conversation_public_id: str,
        conversation_pk: int,
        reply_pk: int,
        reply_public_id: str,
        request: ChatRequest,
        token: tokens.Resolved,
    ) -> None:
        self.layer = layer
        self.group = conversation_group(conversation_public_id)
        self.conversation_pk = conversation_pk
        self.reply_pk = reply_pk
        self.reply_id = reply_public_id
        self.request = request
        self._token = token
        # Text already published (offsets count Unicode code points) and text not yet published.
        self.published: list[str] = []
        self.published_len = 0
        self.pending: list[str] = []
        self._wake = asyncio.Event()
        self._last_flush = 0.0
        self._finished = False
        self._outbox: asyncio.Queue[Outgoing | None] = asyncio.Queue()
        self._stream_task: asyncio.Task[Outcome] | None = None
        self._sender: asyncio.Task[None] | None = None

    @property
    def text(self) -> str:
        return "".join(self.published) + "".join(self.pending)

    async def run(self) -> None:
        self._sender = asyncio.create_task(self._send_loop())
        control = await self.layer.new_channel()
        await self.layer.group_add(control_group(self.reply_id), control)
        pricing = asyncio.create_task(pricing_for(self._token.token, self.request.model))
        helpers = [
            asyncio.create_task(self._listen(control)),
            asyncio.create_task(self._flush_timer()),
            asyncio.create_task(self._checkpoint_loop()),
        ]
        self._stream_task = asyncio.create_task(self._stream())
        try:
            outcome = await self._outcome()
        finally:
            await self._stop_helpers(helpers)
        await self.layer.group_discard(control_group(self.reply_id), control)
        await self._finish(outcome, await _price(pricing))
        await self._close_outbox()

    async def _outcome(self) -> Outcome:
        assert self._stream_task is not None
        try:
            await asyncio.wait({self._stream_task})
        except asyncio.CancelledError:
            # The process is shutting down: keep the text, mark it interrupted, then go.
            log.warning("reply %s cancelled with its process: marked interrupted", self.reply_id)
            self._stream_task.cancel()
            await asyncio.shield(self._finish(_interrupted(), None))
            await asyncio.shield(self._close_outbox())
            raise
        if self._stream_task.cancelled():
            return Outcome(Status.STOPPED)
        return self._stream_task.result()

    async def _stop_helpers(self, helpers: list[asyncio.Task[None]]) -> None:
        self._finished = True
        self._wake.set()
        for helper in helpers:
            helper.cancel()
        # Bounded: a library that swallows a cancellation must not hold the reply open.
        _, stuck = await asyncio.wait(helpers, timeout=HELPER_GRACE_SECONDS)
        for helper in stuck:
            log.warning("reply %s: helper %s did not stop", self.reply_id, helper.get_name())

    async def _stream(self) -> Outcome:
        try:
            # aclosing: a stop cancels this task, and the upstream response must be released at
            # once (Nobox stops generating, and billing, when the connection closes).
            async with aclosing(
                nobox_client().stream_chat(self._token.token, self.request)
            ) as stream:
                async for event in stream:
                    if isinstance(event, Delta):
                        await self._add_text(event.text)
                    elif isinstance(event, Completed):
                        return _completed(event)
        except NoboxError as error:
            if isinstance(error, InvalidToken):
                await db_sync(tokens.mark_rejected)(self._token.record_pk)
            return Outcome(Status.ERROR, error_code=error.code, error_message=explain(error))
        except Exception:
            log.exception("reply %s failed", self.reply_id)
            return Outcome(
                Status.ERROR,
                error_code="internal_error",
                error_message="Something went wrong on our side. Retry in a moment.",
            )
        # A stream that ends with no [DONE] raises IncompleteStream; reaching here means the
        # client returned without Completed, which the contract forbids: treat it as incomplete.
        return Outcome(
            Status.ERROR,
            error_code="incomplete_stream",
            error_message="The answer ended early. The text so far is kept.",
        )

    async def _listen(self, control: str) -> None:
        while not self._finished:
            message = await self.layer.receive(control)
            if message.get("type") == "reply.stop":
                if self._stream_task is not None:
                    self._stream_task.cancel()
            elif message.get("type") == "reply.sync" and isinstance(message.get("reply_to"), str):
                self._queue_snapshot(message["reply_to"])

    def _queue_snapshot(self, reply_to: str) -> None:
        # Only published text: deltas carry offsets past it, so the receiver can join with no gap
        # and drop anything it already has.
        text = "".join(self.published)
        self.published = [text]
        event = {"type": "reply.snapshot", "reply": self.reply_id, "offset": 0, "text": text}
        self._outbox.put_nowait(("send", reply_to, event))

    async def _add_text(self, text: str) -> None:
        # The first text, and any text an interval after the last frame, goes out at once (time
        # to first token matters); text arriving faster is left to the flush timer, so a fast
        # model means one frame per interval, not one per token.
        self.pending.append(text)
        if time.monotonic() - self._last_flush >= settings.REPLY_FLUSH_INTERVAL:
            self._flush()
            # Let the sender relay it now even when upstream bytes are already buffered and the
            # stream loop would otherwise run on without yielding.
            await asyncio.sleep(0)
        else:
            self._wake.set()

    async def _flush_timer(self) -> None:
        """Flush text left pending by `_add_text` once its interval has passed."""
        while not self._finished:
            await self._wake.wait()
            self._wake.clear()
            delay = self._last_flush + settings.REPLY_FLUSH_INTERVAL - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self._flush()

    def _flush(self) -> None:
        """Publish pending text as one delta (queued for the sender: this never blocks)."""
        if not self.pending:
            return
        chunk = "".join(self.pending)
        self.pending.clear()
        self._last_flush = time.monotonic()
        offset = self.published_len
        self.published.append(chunk)
        self.published_len += len(chunk)
        event = {"type": "reply.delta", "reply": self.reply_id, "offset": offset, "text": chunk}
        self._outbox.put_nowait(("group", self.group, event))

    async def _send_loop(self) -> None:
        while (item := await self._outbox.get()) is not None:
            method, target, event = item
            try:
                if method == "group":
                    await self.layer.group_send(target, event)
                else:
                    await self.layer.send(target, event)
            except Exception:
                # A lost frame is recoverable (sockets resync on a gap and `done` carries the
                # whole text); a dead sender is not.
                log.exception("reply %s: could not publish %s", self.reply_id, event["type"])

    async def _close_outbox(self) -> None:
        assert self._sender is not None
        self._outbox.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._sender), timeout=30)
        except TimeoutError:
            log.warning("reply %s: the channel layer did not take its last frames", self.reply_id)

    async def _checkpoint_loop(self) -> None:
        # One small write per interval whatever the token rate; it doubles as the heartbeat that
        # tells other processes this one is alive. A failed write is logged and retried at the
        # next interval: a loop that died silently would get a live reply swept as orphaned.
        while not self._finished:
            await asyncio.sleep(settings.REPLY_CHECKPOINT_INTERVAL)
            try:
                still_streaming = await _checkpoint(self.reply_pk, self.text)
            except Exception:
                log.exception("checkpoint of reply %s failed", self.reply_id)
                continue
            if not still_streaming and not self._finished:
                log.warning(
                    "reply %s was swept while this process was writing it; its final "
                    "write will correct the row",
                    self.reply_id,
                )

    async def _finish(self, outcome: Outcome, pricing: object | None) -> None:
        """The one final write, then `done` queued behind every delta."""
        self._flush()
        message = await _final_write(
            self.reply_pk, self.conversation_pk, self.text, outcome, pricing
        )
        event = {"type": "reply.done", "reply": self.reply_id, "message": message.to_wire()}
        self._outbox.put_nowait(("group", self.group, event))


def _completed(event: Completed) -> Outcome:
    status = Status.TRUNCATED if event.finish_reason == "length" else Status.COMPLETE
    return Outcome(status, finish_reason=event.finish_reason or "", usage=event.usage)


def _interrupted() -> Outcome:
    return Outcome(
        Status.INTERRUPTED,
        error_code="interrupted",
        error_message="The server restarted while writing this reply. The text so far is kept.",
    )


async def _price(task: asyncio.Task[object | None]) -> object | None:
    try:
        return await asyncio.wait_for(task, timeout=5)
    except (TimeoutError, NoboxError):
        return None


@db_sync_apart
def _checkpoint(reply_pk: int, text: str) -> bool:
    """Save the text so far and beat the heart; False if the row is no longer streaming."""
    updated = Message.objects.filter(pk=reply_pk, status=Status.STREAMING).update(
        content=text, heartbeat_at=timezone.now()
    )
    return updated > 0


@db_sync_apart
def _final_write(
    reply_pk: int, conversation_pk: int, text: str, outcome: Outcome, pricing: object | None
) -> Message:
    usage = outcome.usage
    now = timezone.now()
    # Unconditional on status: if a sweep misjudged a slow process as dead, the truth wins.
    Message.objects.filter(pk=reply_pk).update(
        content=text,
        status=outcome.status,
        finish_reason=outcome.finish_reason,
        error_code=outcome.error_code,
        error_message=outcome.error_message,
        prompt_tokens=usage.prompt_tokens if usage else None,
        completion_tokens=usage.completion_tokens if usage else None,
        total_tokens=usage.total_tokens if usage else None,
        pricing=pricing if isinstance(pricing, dict | list | str) else None,
        cost=cost_of(pricing, usage),
        finished_at=now,
        heartbeat_at=now,
    )
    Conversation.objects.filter(pk=conversation_pk).update(updated_at=now)
    return Message.objects.get(pk=reply_pk)


def cost_of(pricing: object | None, usage: Usage | None) -> Decimal | None:
    """Cost in USD from per-token prompt/completion prices, when Nobox gave both and usage."""
    if usage is None or not isinstance(pricing, dict):
        return None
    try:
        prompt = Decimal(str(pricing["prompt"]))
        completion = Decimal(str(pricing["completion"]))
    except (KeyError, InvalidOperation):
        return None
    return prompt * usage.prompt_tokens + completion * usage.completion_tokens


# --- orphans -----------------------------------------------------------------------------------


def sweep_orphans() -> list[Message]:
    """Mark replies whose process stopped heart-beating as interrupted; return them."""
    cutoff = timezone.now() - timedelta(seconds=settings.REPLY_ORPHAN_AFTER)
    stale = list(
        Message.objects.filter(status=Status.STREAMING, heartbeat_at__lt=cutoff).select_related(
            "conversation"
        )
    )
    swept = []
    outcome = _interrupted()
    for message in stale:
        updated = Message.objects.filter(
            pk=message.pk, status=Status.STREAMING, heartbeat_at__lt=cutoff
        ).update(
            status=outcome.status,
            error_code=outcome.error_code,
            error_message=outcome.error_message,
            finished_at=timezone.now(),
        )
        if updated:
            # Re-read with its conversation: the caller is async and must not lazy-load it.
            swept.append(Message.objects.select_related("conversation").get(pk=message.pk))
    return swept


async def sweep_and_announce() -> int:
    swept = await db_sync(sweep_orphans)()
    if swept:
        log.warning(
            "marked %d orphaned replies interrupted: %s",
            len(swept),
            ", ".join(message.public_id for message in swept),
        )
    layer = get_channel_layer()
    assert layer is not None
    for message in swept:
        await layer.group_send(
            conversation_group(message.conversation.public_id),
            {
                "type": "reply.done",
                "reply": message.public_id,
                "message": message.to_wire(),
            },
        )
    return len(swept)


_sweeper: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}


def ensure_sweeper() -> None:
    """Start this process's periodic sweep (once per event loop)."""
    loop = asyncio.get_running_loop()
    task = _sweeper.get(loop)
    if task is None or task.done():
        _sweeper[loop] = loop.create_task(_sweep_forever(), name="reply sweeper")


async def _sweep_forever() -> None:
    while True:
        try:
            await sweep_and_announce()
        except Exception:
            log.exception("reply sweep failed")
        await asyncio.sleep(settings.REPLY_SWEEP_INTERVAL)
