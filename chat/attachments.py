"""Files people send with a message: recognised from their bytes, kept through Django's storage
API (files under `var/files/` by default, any storage backend in production), referenced from
the message, and read back into content parts only when a request to Nobox is built.

A browser names a file and a type; neither is believed. The bytes decide: PNG, JPEG, GIF and
WebP images, WAV and MP3 audio, and UTF-8 text (code, notes, CSV), which Nobox receives as a
text part. Anything else is refused before anything is stored.
"""

from __future__ import annotations

import base64
import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import prefetch_related_objects
from django.http import FileResponse

from chat.models import Attachment, Message

log = logging.getLogger(__name__)

IMAGE, AUDIO, TEXT = "image", "audio", "text"


@dataclass(frozen=True)
class Kind:
    kind: str  # IMAGE, AUDIO or TEXT
    content_type: str
    audio_format: str = ""  # "wav" or "mp3" for audio: what Nobox's input_audio part names


@dataclass(frozen=True)
class Upload:
    """An attachment of a `send`, decoded and recognised, not stored yet."""

    name: str
    data: bytes
    kind: Kind


class Unrecognised(ValueError):
    """The bytes are none of the kinds of file a message may carry."""


class Undecodable(ValueError):
    """An attachment's base64 that is refused before any file is made of it; `reason` is
    "too_large", "empty" or "not_base64", for the caller to say in its own words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def decode(data: str, limit: int) -> bytes:
    """An attachment's bytes from strict standard base64 (no whitespace, no URL-safe alphabet,
    padded), the size checked from the length first so an oversized one is never decoded. The
    one decoder for every way a file comes in (a socket's `send`, an imported conversation)."""
    if decoded_size(data) > limit:
        raise Undecodable("too_large")
    if not data:
        raise Undecodable("empty")
    try:
        # validate=True refuses any character outside the alphabet instead of skipping it, so
        # "***" or a stray newline is an error, not a silently different file.
        return base64.b64decode(data, validate=True)
    except ValueError:  # binascii.Error is a ValueError
        raise Undecodable("not_base64") from None


def decoded_size(data: str) -> int:
    """Bytes that base64 `data` decodes to, from its length alone (exact for valid base64; for
    anything else decoding refuses it anyway)."""
    return len(data) * 3 // 4 - data[-2:].count("=")


def recognise(data: bytes) -> Kind:
    """What the bytes are, from their own signature (never from a name or a declared type)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return Kind(IMAGE, "image/png")
    if data.startswith(b"\xff\xd8\xff"):
        return Kind(IMAGE, "image/jpeg")
    if data.startswith((b"GIF87a", b"GIF89a")):
        return Kind(IMAGE, "image/gif")
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return Kind(IMAGE, "image/webp")
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return Kind(AUDIO, "audio/wav", "wav")
    if data.startswith(b"ID3") or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return Kind(AUDIO, "audio/mpeg", "mp3")
    if _is_text(data):
        return Kind(TEXT, "text/plain; charset=utf-8")
    raise Unrecognised


def _is_text(data: bytes) -> bool:
    if b"\x00" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


UNSAFE_NAME = re.compile(r"[^\w.\- ()+,@]+")


def clean_name(name: object, kind: Kind) -> str:
    """A file name fit to show and to send: no path, no control characters, bounded."""
    raw = name if isinstance(name, str) else ""
    base = UNSAFE_NAME.sub("_", raw.replace("\\", "/").rsplit("/", 1)[-1]).strip(" ._")[:120]
    return base or {IMAGE: "image", AUDIO: "audio", TEXT: "file.txt"}[kind.kind]


# --- storing -------------------------------------------------------------------------------------


def save_files(uploads: Iterable[Upload]) -> list[str]:
    """Write the uploads' bytes to storage (before the rows that name them are committed);
    returns the stored names, in order. `discard` removes them if those rows never land."""
    return [
        default_storage.save(f"attachments/{_suffix(upload)}", ContentFile(upload.data))
        for upload in uploads
    ]


def with_files(messages: list[Message]) -> list[Message]:
    """`messages`, the files of those that hold any read in one query. Not `prefetch_related`
    on them all: it builds a queryset per message, most of which hold no file; for fifty sends
    to chats with history that was most of storing them."""
    prefetch_related_objects([m for m in messages if m.attachments], "files")
    return messages


def rows_for(uploads: list[Upload], stored_names: list[str]) -> list[Attachment]:
    """Unsaved rows for uploads whose bytes are stored under `stored_names` (the caller sets
    their message and position, or lets Conversation.add_turn do it)."""
    return [
        Attachment(
            position=position,
            kind=upload.kind.kind,
            content_type=upload.kind.content_type,
            audio_format=upload.kind.audio_format,
            name=upload.name,
            size=len(upload.data),
            stored_name=stored_name,
        )
        for position, (upload, stored_name) in enumerate(zip(uploads, stored_names, strict=True))
    ]


def _suffix(upload: Upload) -> str:
    extension = {
        "image/png": ".png",
        "image/jpeg": ".jpg",
        "image/gif": ".gif",
        "image/webp": ".webp",
        "audio/wav": ".wav",
        "audio/mpeg": ".mp3",
    }.get(upload.kind.content_type, ".txt")
    # The stored name is ours, never the uploaded one (which is kept only as a label).
    return f"{secrets.token_urlsafe(16)}{extension}"


def copies(files: Iterable[Attachment]) -> list[Attachment]:
    """Unsaved attachments with the same files, copied in storage: each message owns its files,
    so deleting one never takes another's."""
    return [
        Attachment(
            position=f.position,
            kind=f.kind,
            content_type=f.content_type,
            audio_format=f.audio_format,
            name=f.name,
            size=f.size,
            stored_name=copy_stored(f.stored_name),
        )
        for f in files
    ]


def copy_stored(stored_name: str) -> str:
    """A new stored file with the same bytes (a copied conversation owns its own files)."""
    extension = stored_name.rsplit(".", 1)[-1]
    with default_storage.open(stored_name, "rb") as handle:
        return default_storage.save(f"attachments/{secrets.token_urlsafe(16)}.{extension}", handle)


def discard(stored_names: Iterable[str]) -> None:
    for name in stored_names:
        try:
            default_storage.delete(name)
        except OSError:
            log.warning("could not delete attachment file %s", name)


def read(stored_name: str) -> bytes:
    with default_storage.open(stored_name, "rb") as handle:
        data: bytes = handle.read()
    return data


def content_part(kind: str, audio_format: str, content_type: str, name: str, data: bytes) -> Any:
    """The OpenAI content part Nobox receives for a stored file."""
    if kind == IMAGE:
        encoded = base64.b64encode(data).decode("ascii")
        return {"type": "image_url", "image_url": {"url": f"data:{content_type};base64,{encoded}"}}
    if kind == AUDIO:
        encoded = base64.b64encode(data).decode("ascii")
        return {"type": "input_audio", "input_audio": {"data": encoded, "format": audio_format}}
    return {"type": "text", "text": f"File {name}:\n\n{data.decode('utf-8')}"}


def delete_stored_file(sender: object, instance: Any, **kwargs: Any) -> None:
    """An attachment's row is gone (its message or conversation was deleted): its file goes
    too, once the deletion is committed (a rolled-back deletion keeps both)."""
    stored_name = instance.stored_name
    transaction.on_commit(lambda: discard([stored_name]))


# A stored file is served as what its bytes are, never sniffed by the browser, never a page:
# text is a download, and nothing in a response may run (a sandboxed, empty CSP).
FILE_CSP = "default-src 'none'; sandbox"


def attachment_response(file: Any) -> FileResponse:
    response = FileResponse(
        default_storage.open(file.stored_name, "rb"),
        content_type=file.content_type,
        as_attachment=file.kind == TEXT,
        filename=file.name,
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = FILE_CSP
    return response
