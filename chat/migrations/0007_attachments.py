"""Attachments as files (issue 11): the Attachment model, and every attachment kept inline in a
message row (an image data URL or base64 audio, as sent to Nobox) moved out into storage, the
row keeping a reference. Reversible: going back puts the bytes into the rows again."""

from __future__ import annotations

import base64
import re
from typing import Any

import django.db.models.deletion
import django.utils.timezone
from django.core.files.storage import default_storage
from django.db import migrations, models

import chat.models

DATA_URL = re.compile(r"^data:(image/[a-z]+);base64,(.*)$", re.DOTALL)


def move_out(apps: Any, schema_editor: Any) -> None:
    # The live recogniser and storage naming, not copies: moved files must be what a new upload
    # of the same bytes would be. If they change shape, freeze a copy here.
    from chat.attachments import Unrecognised, Upload, recognise, save_files

    Message = apps.get_model("chat", "Message")
    Attachment = apps.get_model("chat", "Attachment")
    inline = Message.objects.exclude(attachments=[]).filter(role="user")
    for message in inline.iterator(chunk_size=100):
        references = []
        for position, part in enumerate(message.attachments):
            data = _inline_bytes(part)
            if data is None:
                continue  # already a reference, or nothing a file can be made of
            try:
                kind = recognise(data)
            except Unrecognised:
                continue
            name = {"image": "image", "audio": "audio"}.get(kind.kind, "file.txt")
            [stored] = save_files([Upload(name, data, kind)])
            file = Attachment.objects.create(
                message=message,
                position=position,
                kind=kind.kind,
                content_type=kind.content_type,
                audio_format=kind.audio_format,
                name=name,
                size=len(data),
                stored_name=stored,
            )
            references.append(
                {
                    "id": file.public_id,
                    "type": file.kind,
                    "name": file.name,
                    "size": file.size,
                    "format": file.audio_format,
                }
            )
        message.attachments = references
        message.save(update_fields=["attachments"])


def _inline_bytes(part: Any) -> bytes | None:
    if not isinstance(part, dict):
        return None
    if part.get("type") == "image_url":
        match = DATA_URL.match(str((part.get("image_url") or {}).get("url", "")))
        return base64.b64decode(match.group(2)) if match else None
    if part.get("type") == "input_audio":
        return base64.b64decode(str((part.get("input_audio") or {}).get("data", "")))
    return None


def move_back(apps: Any, schema_editor: Any) -> None:
    Message = apps.get_model("chat", "Message")
    Attachment = apps.get_model("chat", "Attachment")
    with_files = Message.objects.filter(files__isnull=False).distinct()
    for message in with_files.iterator(chunk_size=100):
        parts = []
        for file in Attachment.objects.filter(message=message).order_by("position"):
            with default_storage.open(file.stored_name, "rb") as handle:
                data = handle.read()
            parts.append(_inline_part(file, data))
            default_storage.delete(file.stored_name)
        message.attachments = parts
        message.save(update_fields=["attachments"])


def _inline_part(file: Any, data: bytes) -> dict[str, Any]:
    encoded = base64.b64encode(data).decode("ascii")
    if file.kind == "audio":
        return {
            "type": "input_audio",
            "input_audio": {"data": encoded, "format": file.audio_format},
        }
    if file.kind == "image":
        return {
            "type": "image_url",
            "image_url": {"url": f"data:{file.content_type};base64,{encoded}"},
        }
    # Text files did not exist before: back as the text part Nobox was sent.
    return {"type": "text", "text": f"File {file.name}:\n\n{data.decode('utf-8')}"}


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0005_share_links"),
    ]

    operations = [
        migrations.CreateModel(
            name="Attachment",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "public_id",
                    models.CharField(
                        default=chat.models.new_public_id,
                        editable=False,
                        max_length=32,
                        unique=True,
                    ),
                ),
                ("position", models.PositiveSmallIntegerField()),
                ("kind", models.CharField(max_length=8)),
                ("content_type", models.CharField(max_length=64)),
                ("audio_format", models.CharField(blank=True, max_length=8)),
                ("name", models.CharField(max_length=200)),
                ("size", models.PositiveIntegerField()),
                ("stored_name", models.CharField(max_length=255)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "message",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="files",
                        to="chat.message",
                    ),
                ),
            ],
            options={
                "ordering": ["message", "position"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("message", "position"), name="attachment_position"
                    )
                ],
            },
        ),
        migrations.RunPython(move_out, move_back),
    ]
