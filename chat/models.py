"""Users, their Nobox tokens, conversations and messages."""

from __future__ import annotations

import hashlib
import secrets
from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, TypedDict

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.validators import MinValueValidator
from django.db import connection, models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


def new_public_id() -> str:
    """An unguessable id for URLs and frames (128 bits); primary keys never leave the server."""
    return secrets.token_urlsafe(16)


class User(AbstractUser):
    """The team member. Custom from the first migration so later fields need no swap."""

    may_use_team_token = models.BooleanField(
        default=False,
        help_text="Lets this user chat on the team's shared Nobox token when they have none of "
        "their own. Usage stays attributed to them.",
    )
    # USD per calendar month (chat.budgets); NULL: the team's default applies.
    monthly_limit = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0))],
        help_text="Monthly spending limit in USD. Empty: the team default (Team budget).",
    )


class NoboxToken(models.Model):
    """A Nobox API token, encrypted at rest (see chat.tokens): a user's own, or the team's one
    shared token (no user)."""

    class State(models.TextChoices):
        ACTIVE = "active"
        EXPIRED = "expired"
        REVOKED = "revoked"
        REJECTED = "rejected"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="nobox_token",
        null=True,
        blank=True,
    )
    is_team = models.BooleanField(default=False, editable=False)
    team_for_everyone = models.BooleanField(
        default=False,
        help_text="Team token only: every user without a token of their own may use it (not "
        "only those marked 'may use team token').",
    )
    ciphertext = models.BinaryField(editable=False)
    last4 = models.CharField(max_length=4, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_verified_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_verify_ok = models.BooleanField(null=True, editable=False)
    last_verify_error = models.CharField(max_length=300, blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Nobox answered 401 to this token; sending stops until it is replaced or verifies again.
    rejected_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint(
                fields=["is_team"], condition=Q(is_team=True), name="one_team_token"
            ),
            models.CheckConstraint(
                condition=Q(is_team=True, user__isnull=True) | Q(is_team=False, user__isnull=False),
                name="token_is_personal_or_team",
            ),
        ]

    def __str__(self) -> str:
        owner = "team" if self.is_team else f"user {self.user_id}"
        return f"token …{self.last4} ({owner})"

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return self.State.REVOKED
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return self.State.EXPIRED
        if self.rejected_at is not None:
            return self.State.REJECTED
        return self.State.ACTIVE


class AuditEvent(models.Model):
    """Who did what to whom, when, from where. Never holds a secret."""

    class Action(models.TextChoices):
        TOKEN_SET = "token.set"
        TOKEN_REPLACED = "token.replaced"
        TOKEN_REMOVED = "token.removed"
        TOKEN_REVOKED = "token.revoked"
        TOKEN_VERIFIED = "token.verified"
        TOKEN_EXPIRY_CHANGED = "token.expiry_changed"
        TOKEN_REJECTED = "token.rejected"
        TOKENS_ROTATED = "tokens.rotated"
        USER_CREATED = "user.created"
        USER_DEACTIVATED = "user.deactivated"
        USER_REACTIVATED = "user.reactivated"
        USER_MADE_STAFF = "user.made_staff"
        USER_STAFF_REMOVED = "user.staff_removed"
        USER_MADE_SUPERUSER = "user.made_superuser"
        USER_SUPERUSER_REMOVED = "user.superuser_removed"
        USER_GROUPS_CHANGED = "user.groups_changed"
        USER_PERMISSIONS_CHANGED = "user.permissions_changed"
        USER_PASSWORD_RESET = "user.password_reset"
        USER_TEAM_TOKEN_ALLOWED = "user.team_token_allowed"
        USER_TEAM_TOKEN_DENIED = "user.team_token_denied"
        SHARE_CREATED = "share.created"
        SHARE_REVOKED = "share.revoked"
        USER_LIMIT_CHANGED = "user.limit_changed"
        TEAM_BUDGET_CHANGED = "team.budget_changed"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Names are copied so the trail still reads after an account is deleted.
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=40, choices=Action.choices, db_index=True)
    target_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    target_name = models.CharField(max_length=150, blank=True)
    detail = models.CharField(max_length=500, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_name or 'system'} {self.action}"


class ConversationQuerySet(models.QuerySet["Conversation"]):
    def live(self) -> ConversationQuerySet:
        """Not deleted: a deleted conversation waits out its undo window (hidden everywhere),
        then chat.conversations.purge_deleted removes it for good."""
        return self.filter(deleted_at__isnull=True)

    def save_turns(self, conversations: list[Conversation]) -> None:
        """Save the turn fields of conversations that each took one `next_turn` (rows locked by
        the caller): one UPDATE per distinct settings, usually one for a whole group of sends.

        Why: a `save` per conversation was a fifth of storing fifty sends together, and Django's
        `bulk_update` builds a CASE per field and row that costs more than the rows it saves.
        `next_seq` moves on in SQL (each took one turn); every other field is the same value
        within one UPDATE."""
        alike: defaultdict[tuple[Any, ...], list[int]] = defaultdict(list)
        for conversation in conversations:
            alike[tuple(getattr(conversation, f) for f in Conversation.SET_BY_TURN)].append(
                conversation.pk
            )
        for values, pks in alike.items():
            self.filter(pk__in=pks).update(
                next_seq=models.F("next_seq") + Conversation.TURN_MESSAGES,
                **dict(zip(Conversation.SET_BY_TURN, values, strict=True)),
            )


class Conversation(models.Model):
    public_id = models.CharField(max_length=32, unique=True, default=new_public_id, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    title = models.CharField(max_length=200, blank=True)
    model = models.CharField(max_length=200, blank=True)
    system_prompt = models.TextField(blank=True)
    temperature = models.FloatField(null=True, blank=True)
    max_tokens = models.PositiveIntegerField(null=True, blank=True)
    # The next message's position; bumped under a row lock when messages are added.
    next_seq = models.PositiveIntegerField(default=1)
    # The last message of the branch the person sees (chat.branches), set when they switch to
    # another version of a message; None means the newest message, which every new turn is.
    leaf_seq = models.PositiveIntegerField(null=True, blank=True)
    # Set once any message has a second version (chat.branches): until then no tree is read.
    branched = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Sidebar state (chat/conversations.py): pinned first, archived tucked away, and deleted
    # ones hidden until their undo window has passed and they are purged.
    pinned_at = models.DateTimeField(null=True, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True, db_index=True)

    objects = ConversationQuerySet.as_manager()

    class Meta:
        ordering: ClassVar[list[str]] = ["-updated_at"]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["owner", "-updated_at"], name="conversation_owner_recent"),
        ]

    def __str__(self) -> str:
        return self.title or self.public_id

    @property
    def display_title(self) -> str:
        return self.title or "New chat"

    # What a turn changes on its conversation (with the settings a `send` carries): `next_seq`
    # moves on by TURN_MESSAGES, the others are set.
    SET_BY_TURN: ClassVar[list[str]] = [
        "model",
        "system_prompt",
        "temperature",
        "max_tokens",
        "leaf_seq",
        "branched",
        "updated_at",
    ]
    TURN_FIELDS: ClassVar[list[str]] = [*SET_BY_TURN, "next_seq"]
    TURN_MESSAGES = 2  # a turn is the user's message and the reply's placeholder

    @property
    def visible_leaf(self) -> int:
        """The seq of the last message of the branch the person sees (0: no message yet)."""
        return self.leaf_seq if self.leaf_seq is not None else self.next_seq - 1

    def add_turn(
        self,
        author: Any,
        text: str,
        files: list[Attachment],
        client_id: str,
        token_source: str,
        parent_seq: int,
    ) -> tuple[Message, Message]:
        """Store the user's message (with its `files`, unsaved, whose bytes are already in
        storage) after the message `parent_seq` (0: first), and a streaming placeholder for the
        reply, under the caller's transaction and row lock; saves the conversation's settings
        with them (inserts the conversation itself when it is new)."""
        new_chat = self._state.adding
        user_message, reply = self.next_turn(author, text, client_id, token_source, parent_seq)
        if new_chat:
            self.save(force_insert=True)  # with the turn's fields already set
        user_message.take_files(files)
        # One statement; both get their pks (RETURNING: PostgreSQL, SQLite 3.35 and later).
        Message.objects.bulk_create([user_message, reply])
        Attachment.objects.bulk_create(files)
        if not new_chat:
            self.save(update_fields=self.TURN_FIELDS)
        return user_message, reply

    def add_reply(self, author: Any, client_id: str, token_source: str, parent_seq: int) -> Message:
        """Store a streaming placeholder for a new version of the reply to the user message
        `parent_seq` (regenerate, retry), asked for by `author` with `client_id`."""
        now = timezone.now()
        reply = self._placeholder(self.next_seq, parent_seq, token_source, now)
        reply.author, reply.client_id = author, client_id
        reply.save(force_insert=True)
        self._moved_on(self.next_seq + 1, now)
        self.save(update_fields=self.TURN_FIELDS)
        return reply

    def next_turn(
        self,
        author: Any,
        text: str,
        client_id: str,
        token_source: str,
        parent_seq: int,
        now: datetime | None = None,
    ) -> tuple[Message, Message]:
        """The user's message (after the message `parent_seq`, 0 for a first message) and
        the reply's streaming placeholder, not saved yet, with this conversation's `next_seq`,
        `leaf_seq` and `updated_at` moved on (the caller saves all three)."""
        now = now or timezone.now()
        seq = self.next_seq
        user_message = Message(
            conversation=self,
            seq=seq,
            parent_seq=parent_seq,
            role=Message.Role.USER,
            author=author,
            content=text,
            client_id=client_id,
            created_at=now,
        )
        reply = self._placeholder(seq + 1, seq, token_source, now)
        self._moved_on(seq + self.TURN_MESSAGES, now)
        return user_message, reply

    def _placeholder(self, seq: int, parent_seq: int, token_source: str, now: Any) -> Message:
        return Message(
            conversation=self,
            seq=seq,
            parent_seq=parent_seq,
            role=Message.Role.ASSISTANT,
            model=self.model,
            token_source=token_source,
            status=Message.Status.STREAMING,
            created_at=now,
            heartbeat_at=now,
        )

    def _moved_on(self, next_seq: int, now: Any) -> None:
        # The new reply is the newest message, so the branch the person sees ends there.
        self.next_seq, self.leaf_seq, self.updated_at = next_seq, None, now


class MessageQuerySet(models.QuerySet["Message"]):
    def streaming(self) -> MessageQuerySet:
        return self.filter(status=Message.Status.STREAMING)

    def checkpoint(self, texts: dict[int, str]) -> None:
        """Save streaming replies' text so far (by pk) and beat their hearts; a reply that has
        ended meanwhile (a sweep took it for an orphan) is left as it is.

        One statement run for every reply (executemany): this runs every second for every
        running reply of the process, and an ORM update per reply cost more than the relay."""
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        table, streaming = connection.ops.quote_name(self.model._meta.db_table), "streaming"
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {table} SET content = %s, heartbeat_at = %s "  # noqa: S608 - no input
                "WHERE id = %s AND status = %s",
                [(text, now, pk, streaming) for pk, text in texts.items()],
            )

    def finish_many(self, endings: dict[int, dict[str, Any]]) -> dict[int, Message]:
        """The final writes of replies (by pk; each ending names the same columns: content,
        status, error, usage, cost) under the caller's transaction, in four statements whatever
        their number. Unconditional on status: if a sweep misjudged a slow process as dead, the
        truth wins. Raises DoesNotExist if a reply is gone (its chat was purged meanwhile).

        Their conversations' rows are locked first, in pk order, as a send locks a conversation
        before it inserts (PostgreSQL): a send that took one first would otherwise wait on a
        reply's row (the index of one streaming reply per conversation) while this write waits
        on the conversation. Then one UPDATE run for every reply (executemany), then they are
        read back with their owners (their usage records name them, chat.usage)."""
        now = timezone.now()
        pks = sorted(endings)
        chats = Conversation.objects.filter(messages__pk__in=pks).select_for_update(
            no_key=True, of=("self",)
        )
        locked = list(chats.order_by("pk").values_list("pk", flat=True))
        Conversation.objects.filter(pk__in=locked).update(updated_at=now)
        written_at = {"finished_at": now, "heartbeat_at": now}
        fields = [_column(name) for name in {**endings[pks[0]], **written_at}]
        quote = connection.ops.quote_name
        assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
        # Each value prepared by its field, as an ORM update does (JSON, decimals, datetimes); an
        # ending without one of the columns is a KeyError, not a column silently set to `now`.
        rows = []
        for pk, ending in endings.items():
            values = {**ending, **written_at}
            rows.append([f.get_db_prep_save(values[f.name], connection) for f in fields] + [pk])
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {quote(self.model._meta.db_table)} SET {assignments} "  # noqa: S608 - no input
                "WHERE id = %s",
                rows,
            )
        written = self.select_related("conversation__owner").in_bulk(pks)
        if len(written) < len(pks):
            raise self.model.DoesNotExist(f"replies {set(pks) - set(written)} are gone")
        return written

    def orphaned(self, before: datetime) -> MessageQuerySet:
        """Streaming replies whose process stopped heart-beating before `before`."""
        return self.streaming().filter(heartbeat_at__lt=before)


def _column(name: str) -> models.Field[Any, Any]:
    field = Message._meta.get_field(name)
    assert isinstance(field, models.Field)
    return field


class WireError(TypedDict):
    code: str
    message: str


class WireUsage(TypedDict):
    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None


class WireAttachment(TypedDict):
    """A file of a message as the page sees it: a reference, never the bytes."""

    id: str
    type: str  # "image", "audio" or "text"
    url: str  # served only to those who may see the message (chat.views.attachment)
    name: str
    size: int
    format: str  # "wav" or "mp3" for audio, else ""


class WireMessage(TypedDict):
    """A message as the browser sees it (frames and page data)."""

    id: str
    seq: int
    role: str
    content: str
    attachments: list[WireAttachment]
    model: str
    status: str
    error: WireError | None
    finish_reason: str | None
    usage: WireUsage | None
    cost: str | None
    created_at: str
    # The ids of its versions (it included), oldest first, when there are several; else [].
    versions: list[str]


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"

    class Status(models.TextChoices):
        COMPLETE = "complete"
        STREAMING = "streaming"
        STOPPED = "stopped"
        INTERRUPTED = "interrupted"
        ERROR = "error"
        TRUNCATED = "truncated"

    public_id = models.CharField(max_length=32, unique=True, default=new_public_id, editable=False)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    seq = models.PositiveIntegerField()
    # The message this one follows: its seq in the same conversation, 0 for a first message,
    # NULL for "the message before it" (rows older than branches, and rows made by hand).
    # Messages that follow the same one are versions of each other: an edited user message, a
    # regenerated reply (chat.branches).
    parent_seq = models.PositiveIntegerField(null=True, blank=True)
    role = models.CharField(max_length=16, choices=Role.choices)
    # Who wrote a user message, or asked for a new version of a reply (NULL for other replies):
    # idempotency keys are unique per person, not per conversation, so a resent `send` for a
    # new chat finds the chat it already made.
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
    )
    # Plain text of the message; for user messages with attachments, the text part.
    content = models.TextField(blank=True)
    # References to the message's files (`files`, chat.attachments): what the page shows of
    # them, so no message needs a query or carries bytes to be shown.
    attachments = models.JSONField(default=list, blank=True)
    # Idempotency key chosen by the browser for a user message: a resent `send` finds it. NULL
    # (not "") for assistant messages, so the unique constraint ignores them.
    client_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    model = models.CharField(max_length=200, blank=True)
    # Whose Nobox token paid for a reply: the user's own ("own") or the team's ("team").
    token_source = models.CharField(max_length=8, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    finish_reason = models.CharField(max_length=32, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    total_tokens = models.PositiveIntegerField(null=True, blank=True)
    # The model's price as Nobox gave it when the reply was made, so cost stays true later.
    pricing = models.JSONField(null=True, blank=True)
    cost = models.DecimalField(max_digits=14, decimal_places=8, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Written by the generating process at every checkpoint; a stale one means it died.
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    objects = MessageQuerySet.as_manager()

    class Meta:
        ordering: ClassVar[list[str]] = ["conversation", "seq"]
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint(fields=["conversation", "seq"], name="message_seq_unique"),
            models.UniqueConstraint(
                fields=["author", "client_id"],
                condition=Q(client_id__isnull=False),
                name="message_author_client_id_unique",
            ),
            # At most one reply streams per conversation, enforced by the database itself so two
            # processes cannot both start one.
            models.UniqueConstraint(
                fields=["conversation"],
                condition=Q(status="streaming"),
                name="one_streaming_reply_per_conversation",
            ),
        ]
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["status", "heartbeat_at"], name="message_status_heartbeat"),
            # Every send counts its person's messages of the last minute (chat.limits): a short
            # range of this index, not every message they ever wrote.
            models.Index(fields=["author", "created_at"], name="message_author_created"),
        ]

    def __str__(self) -> str:
        return f"{self.role} #{self.seq} in {self.conversation_id}"

    def take_files(self, files: list[Attachment]) -> list[Attachment]:
        """Make unsaved `files` (their bytes already in storage) this message's, in order: the
        message keeps their references and each file its message and place. Save the message,
        then the files (`Attachment.objects.bulk_create`). Returns `files`."""
        self.attachments = [file.reference() for file in files]
        for position, file in enumerate(files):
            file.message, file.position = self, position
        return files

    def to_wire(self, versions: list[str] | None = None) -> WireMessage:
        """The message as the browser sees it (frames, page data), with its `versions` (from
        its conversation's tree: chat.branches.wire). Never carries secrets."""
        return {
            "id": self.public_id,
            "seq": self.seq,
            "versions": versions or [],
            "role": self.role,
            "content": self.content,
            "attachments": [_with_url(reference) for reference in self.attachments],
            "model": self.model,
            "status": self.status,
            "error": {"code": self.error_code, "message": self.error_message}
            if self.error_code
            else None,
            "finish_reason": self.finish_reason or None,
            "usage": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens,
            }
            if self.total_tokens is not None
            else None,
            "cost": str(self.cost) if self.cost is not None else None,
            "created_at": self.created_at.isoformat(),
        }


class Attachment(models.Model):
    """A file sent with a user message (chat.attachments): its bytes live in storage under
    `stored_name`, never in the row or in frames."""

    public_id = models.CharField(max_length=32, unique=True, default=new_public_id, editable=False)
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="files")
    position = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=8)  # image, audio or text
    content_type = models.CharField(max_length=64)
    audio_format = models.CharField(max_length=8, blank=True)
    name = models.CharField(max_length=200)
    size = models.PositiveIntegerField()
    stored_name = models.CharField(max_length=255)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering: ClassVar[list[str]] = ["message", "position"]
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint(fields=["message", "position"], name="attachment_position"),
        ]

    def __str__(self) -> str:
        return self.name

    def reference(self) -> dict[str, Any]:
        """What the message keeps of this file (Message.attachments)."""
        return {
            "id": self.public_id,
            "type": self.kind,
            "name": self.name,
            "size": self.size,
            "format": self.audio_format,
        }


def _with_url(reference: dict[str, Any]) -> WireAttachment:
    return {
        "id": reference["id"],
        "type": reference["type"],
        "url": reverse("chat:attachment", args=[reference["id"]]),
        "name": reference["name"],
        "size": reference["size"],
        "format": reference["format"],
    }


# --- shared links (chat.sharing holds the workflows) ---------------------------------------------


def share_token_hash(token: str) -> str:
    """What is stored of a share link's token: its SHA-256. The token has 256 random bits, so
    no salt or slow hash is needed for a leaked hash to be useless."""
    return hashlib.sha256(token.encode()).hexdigest()


class ShareLinkQuerySet(models.QuerySet["ShareLink"]):
    def usable(self) -> ShareLinkQuerySet:
        """Links that open: not revoked, not expired, their owner still an active member, and
        their conversation not deleted (nor waiting out its undo window)."""
        now = timezone.now()
        return self.filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now),
            revoked_at__isnull=True,
            owner__is_active=True,
            conversation__deleted_at__isnull=True,
        )

    def for_token(self, token: str) -> ShareLink | None:
        """The usable link a token opens, or None (unknown, revoked, expired: all alike)."""
        if not token or len(token) > 100:
            return None
        return (
            self.usable()
            .select_related("conversation", "owner")
            .filter(token_hash=share_token_hash(token))
            .first()
        )


class ShareLink(models.Model):
    """A link that shows one conversation, read-only, to whoever holds its token."""

    class Kind(models.TextChoices):
        SNAPSHOT = "snapshot", _("Snapshot")
        LIVE = "live", _("Live")

    class State(models.TextChoices):
        ACTIVE = "active"
        EXPIRED = "expired"
        REVOKED = "revoked"

    # For the owner's pages and the admin; the token itself is never stored.
    public_id = models.CharField(max_length=32, unique=True, default=new_public_id, editable=False)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="share_links"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="share_links"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    # Snapshot links show the branch that ends at this message (the one its owner saw when it
    # was made, chat.sharing); live links show the branch the owner sees now.
    snapshot_seq = models.PositiveIntegerField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    view_count = models.PositiveIntegerField(default=0, editable=False)
    last_viewed_at = models.DateTimeField(null=True, blank=True, editable=False)
    show_owner_name = models.BooleanField(default=False)
    show_cost = models.BooleanField(default=False)

    objects = ShareLinkQuerySet.as_manager()

    class Meta:
        ordering: ClassVar[list[str]] = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} link to {self.conversation}"

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return self.State.REVOKED
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return self.State.EXPIRED
        return self.State.ACTIVE

    def note_view(self) -> None:
        """Count a view (a single UPDATE, so concurrent views are all counted)."""
        now = timezone.now()
        ShareLink.objects.filter(pk=self.pk).update(
            view_count=models.F("view_count") + 1, last_viewed_at=now
        )


class ShareSettings(models.Model):
    """The team's sharing policy, one row, edited in the admin."""

    class Audience(models.TextChoices):
        MEMBERS = "members", _("Signed-in members only")
        ANYONE = "anyone", _("Anyone with the link")

    audience = models.CharField(
        max_length=16,
        choices=Audience.choices,
        default=Audience.MEMBERS,
        help_text="Who may open shared conversation links. Takes effect at once, also for "
        "links already handed out.",
    )

    class Meta:
        verbose_name = "sharing settings"
        verbose_name_plural = "sharing settings"

    def __str__(self) -> str:
        return "Sharing settings"

    @classmethod
    def current(cls) -> ShareSettings:
        settings_row, _ = cls.objects.get_or_create(pk=1)
        return settings_row

    @property
    def anyone_may_view(self) -> bool:
        return self.audience == self.Audience.ANYONE


class TeamBudget(models.Model):
    """The team's budget settings: one row (pk 1), edited in the admin."""

    default_monthly_limit = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal(0))],
        help_text="Monthly spending limit in USD for everyone without a limit of their own. "
        "Empty: no limit.",
    )

    class Meta:
        verbose_name = "team budget"

    def __str__(self) -> str:
        return "Team budget"

    @classmethod
    def current(cls) -> TeamBudget:
        budget, _ = cls.objects.get_or_create(pk=1)
        return budget


class Usage(models.Model):
    """One upstream call made on someone's behalf and what it consumed (chat.usage): written
    once, in the same transaction as the reply's final write."""

    class Kind(models.TextChoices):
        REPLY = "reply"
        TITLE = "title"  # the short call that names a new conversation (chat.titles)

    # Deleting a person or a conversation keeps the money spent: names are copied.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="usage_records",
    )
    user_name = models.CharField(max_length=150, blank=True)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # One record per reply, enforced by the database: a sweep and a late final write of the
    # same reply update one row.
    message = models.OneToOneField(
        Message, on_delete=models.SET_NULL, null=True, blank=True, related_name="usage"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.REPLY)
    model = models.CharField(max_length=200, blank=True)
    token_source = models.CharField(max_length=8, blank=True)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    total_tokens = models.PositiveBigIntegerField(default=0)
    # Nobox sent no usage: the counts are estimated from the text (docs/usage.md).
    estimated = models.BooleanField(default=False)
    # The price in force, copied: as Nobox gave it, and parsed (USD per token; NULL: unknown).
    pricing = models.JSONField(null=True, blank=True)
    prompt_price = models.DecimalField(max_digits=24, decimal_places=16, null=True, blank=True)
    completion_price = models.DecimalField(max_digits=24, decimal_places=16, null=True, blank=True)
    # USD; NULL when the price is unknown (never read as zero).
    cost = models.DecimalField(max_digits=14, decimal_places=8, null=True, blank=True)
    status = models.CharField(max_length=16, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering: ClassVar[list[str]] = ["-finished_at", "-id"]
        verbose_name_plural = "usage"
        indexes: ClassVar[list[models.Index]] = [
            models.Index(fields=["user", "finished_at"], name="usage_user_finished"),
        ]

    def __str__(self) -> str:
        return f"{self.user_name} {self.model} {self.total_tokens} tokens"
