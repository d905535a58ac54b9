"""Users, their Nobox tokens, conversations and messages."""

from __future__ import annotations

import secrets
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q
from django.utils import timezone


def new_public_id() -> str:
    """An unguessable id for URLs and frames (128 bits); primary keys never leave the server."""
    return secrets.token_urlsafe(16)


class User(AbstractUser):
    """The team member. Custom from the first migration so later fields need no swap."""


class NoboxToken(models.Model):
    """A user's Nobox API token, encrypted at rest (see chat.tokens)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="nobox_token"
    )
    ciphertext = models.BinaryField()
    last4 = models.CharField(max_length=4)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_verified_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"token …{self.last4} of {self.user_id}"


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
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now, db_index=True)

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
    role = models.CharField(max_length=16, choices=Role.choices)
    # Plain text of the message; for user messages with attachments, the text part.
    content = models.TextField(blank=True)
    # Non-text content parts (image_url / input_audio) exactly as sent upstream.
    attachments = models.JSONField(default=list, blank=True)
    # Idempotency key chosen by the browser for a user message: a resent `send` finds it. NULL
    # (not "") for assistant messages, so the unique constraint ignores them.
    client_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001
    model = models.CharField(max_length=200, blank=True)
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

    class Meta:
        ordering: ClassVar[list[str]] = ["conversation", "seq"]
        constraints: ClassVar[list[Any]] = [
            models.UniqueConstraint(fields=["conversation", "seq"], name="message_seq_unique"),
            models.UniqueConstraint(
                fields=["conversation", "client_id"], name="message_client_id_unique"
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
        ]

    def __str__(self) -> str:
        return f"{self.role} #{self.seq} in {self.conversation_id}"

    def to_wire(self) -> dict[str, Any]:
        """The message as the browser sees it (frames, page data). Never carries secrets."""
        return {
            "id": self.public_id,
            "seq": self.seq,
            "role": self.role,
            "content": self.content,
            "attachments": [_attachment_summary(part) for part in self.attachments],
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


def _attachment_summary(part: dict[str, Any]) -> dict[str, Any]:
    """What the page needs to show an attachment: images inline (data URLs), audio by format."""
    if part.get("type") == "image_url":
        return {"type": "image", "url": part.get("image_url", {}).get("url", "")}
    if part.get("type") == "input_audio":
        return {"type": "audio", "format": part.get("input_audio", {}).get("format", "")}
    return {"type": "other"}
