"""Validation of what the browser sends: every bad frame becomes a FrameError with a stable code.

The codes are part of the WebSocket protocol (docs/protocol.md)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from chat import attachments
from chat.attachments import Upload

CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
IMAGE_DATA_URL = re.compile(r"^data:image/(png|jpeg|gif|webp);base64,(.*)$", re.DOTALL)
AUDIO_FORMATS = {"wav", "mp3"}
# Half of a UTF-16 pair: JSON can spell one ("\ud83d", what JSON.stringify makes of an emoji cut
# in two) but UTF-8 cannot encode it, so the database driver would fail on the insert. NUL
# ("\u0000") likewise: PostgreSQL text cannot hold it.
LONE_SURROGATE = re.compile("[\ud800-\udfff\x00]")
# Fields echoed in an error so the browser knows which of its frames failed.
REF_FIELDS = ("client_id", "conversation")
# A field name safe to quote back in an error message.
FIELD_NAME = re.compile(r"^[a-z_]{1,32}$")


class FrameError(Exception):
    """A refused frame. `ref` is what to echo of it (see frame_ref) when the consumer no longer
    holds the decoded frame, i.e. when decode_frame itself refused it."""

    def __init__(self, code: str, message: str, ref: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref or {}


def decode_frame(text_data: str | None, bytes_data: bytes | None, max_bytes: int) -> dict[str, Any]:
    """The frame as a JSON object with a string `type`, or FrameError; never another exception.

    Nothing here trusts the sender: any JSON value, any nesting, any string may arrive."""
    if text_data is None:
        raise FrameError("bad_frame", _("Frames are JSON text, not binary."))
    if longer_than(text_data, max_bytes):
        raise FrameError(
            "too_large", _("The frame is larger than %(size)s.") % {"size": _size(max_bytes)}
        )
    try:
        frame = json.loads(text_data)
    except (ValueError, RecursionError) as exc:
        # RecursionError: nesting deeper than the parser's stack ("[[[[..."); not a frame.
        raise FrameError("bad_frame", _("The frame is not valid JSON.")) from exc
    if not isinstance(frame, dict):
        raise FrameError("bad_frame", _("A frame is a JSON object with a type."))
    ref = frame_ref(frame)
    if not isinstance(frame.get("type"), str):
        raise FrameError("unknown_type", _("A frame's type must be a string."), ref)
    broken = _lone_surrogate_field(frame)
    if broken is not None:
        raise FrameError(
            "invalid",
            _(
                "%(field)s contains a broken character (half of a UTF-16 pair, e.g. an emoji cut "
                "in two, or a NUL); remove it and send again."
            )
            % {"field": broken},
            ref,
        )
    return frame


def frame_ref(frame: dict[str, Any]) -> dict[str, str]:
    """Echo the frame's client_id and conversation in an error so the browser knows what failed."""
    return {
        key: frame[key]
        for key in REF_FIELDS
        if isinstance(frame.get(key), str)
        and len(frame[key]) <= 64
        and not LONE_SURROGATE.search(frame[key])
    }


def longer_than(text: str, max_bytes: int) -> bool:
    """Whether `text` takes more than `max_bytes` bytes in UTF-8 (what the wire and daphne count).

    A character is 1-4 bytes, so len() settles most cases; only the rest pays for a copy."""
    if len(text) > max_bytes:
        return True
    if len(text) * 4 <= max_bytes or text.isascii():
        return False
    # surrogatepass: a lone surrogate counts (3 bytes) rather than failing; it is refused later.
    return len(text.encode("utf-8", "surrogatepass")) > max_bytes


def _lone_surrogate_field(frame: dict[str, Any]) -> str | None:
    """The top-level field holding a string (a key or a value, at any depth) with a lone
    surrogate, or None. Iterative: how deep a frame nests is the sender's choice."""
    for key, value in frame.items():
        stack: list[object] = [key, value]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                if LONE_SURROGATE.search(item):
                    return key if FIELD_NAME.match(key) else "a field"
            elif isinstance(item, dict):
                stack.extend(item.keys())
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
    return None


def _size(limit: int) -> str:
    if limit >= 1024 * 1024:
        return _("%(count)d MiB") % {"count": limit // 1024 // 1024}
    return _("%(count)d bytes") % {"count": limit}


@dataclass(frozen=True)
class SendRequest:
    client_id: str
    conversation_id: str | None
    text: str
    model: str
    attachments: list[Upload] = field(default_factory=list)
    system_prompt: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    # Where the turn goes in the conversation's tree (chat.branches), at most one of: after the
    # reply `parent_id` (the last one the page shows), as a new version of the user message
    # `edit_id`, or (no text) as a new version of the reply `regenerate_id`. None of them:
    # after the branch the person sees.
    parent_id: str | None = None
    edit_id: str | None = None
    regenerate_id: str | None = None


def parse_send(frame: dict[str, Any]) -> SendRequest:
    text = _string(frame, "text", settings.MAX_MESSAGE_CHARS, default="")
    files = _attachments(frame.get("attachments", []))
    if not text.strip() and not files:
        raise FrameError("invalid", _("The message is empty."))
    parent_id, edit_id = optional_id(frame, "parent"), optional_id(frame, "edit")
    conversation_id = optional_id(frame, "conversation")
    if parent_id and edit_id:
        raise FrameError("invalid", _("A message follows either parent or edit, not both."))
    if (parent_id or edit_id) and conversation_id is None:
        raise FrameError("invalid", _("parent and edit need the conversation."))
    if edit_id and files:
        raise FrameError("invalid", _("An edit keeps the message's files; it cannot add any."))
    return SendRequest(
        client_id=_client_id(frame),
        conversation_id=conversation_id,
        text=text,
        model=_model(frame),
        attachments=files,
        parent_id=parent_id,
        edit_id=edit_id,
        **_chat_options(frame),
    )


def parse_regenerate(frame: dict[str, Any]) -> SendRequest:
    """A `regenerate`: a new version of a reply (also how a failed one is retried), with the
    conversation's model unless the frame names another."""
    return SendRequest(
        client_id=_client_id(frame),
        conversation_id=required_id(frame, "conversation"),
        text="",
        model=_model(frame) if frame.get("model") is not None else "",
        regenerate_id=required_id(frame, "reply"),
        **_chat_options(frame),
    )


def _client_id(frame: dict[str, Any]) -> str:
    client_id = frame.get("client_id")
    if not isinstance(client_id, str) or not CLIENT_ID.match(client_id):
        raise FrameError("invalid", _("client_id must be 1-64 letters, digits, '-' or '_'."))
    return client_id


def _chat_options(frame: dict[str, Any]) -> dict[str, Any]:
    return {
        "system_prompt": _optional_string(frame, "system", settings.MAX_SYSTEM_PROMPT_CHARS),
        "temperature": _temperature(frame.get("temperature")),
        "max_tokens": _max_tokens(frame.get("max_tokens")),
    }


def optional_id(frame: dict[str, Any], key: str) -> str | None:
    value = frame.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 32:
        raise FrameError("invalid", _("%(field)s must be an id string.") % {"field": key})
    return value


def required_id(frame: dict[str, Any], key: str) -> str:
    value = optional_id(frame, key)
    if value is None:
        raise FrameError("invalid", _("%(field)s is required.") % {"field": key})
    return value


def optional_int(frame: dict[str, Any], key: str) -> int | None:
    value = frame.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FrameError(
            "invalid", _("%(field)s must be a non-negative whole number.") % {"field": key}
        )
    return int(value)


def _string(frame: dict[str, Any], key: str, limit: int, default: str) -> str:
    value = frame.get(key, default)
    if not isinstance(value, str):
        raise FrameError("invalid", _("%(field)s must be a string.") % {"field": key})
    if len(value) > limit:
        raise FrameError(
            "too_large",
            _("%(field)s is longer than %(limit)d characters.") % {"field": key, "limit": limit},
        )
    return value


def _optional_string(frame: dict[str, Any], key: str, limit: int) -> str | None:
    if frame.get(key) is None:
        return None
    return _string(frame, key, limit, default="")


def _model(frame: dict[str, Any]) -> str:
    model = frame.get("model")
    if not isinstance(model, str) or not model.strip() or len(model) > 200:
        raise FrameError("invalid", _("Pick a model first."))
    return model.strip()


def _temperature(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 2:
        raise FrameError("invalid", _("temperature must be a number from 0 to 2."))
    return float(value)


def _max_tokens(value: object) -> int | None:
    if value is None:
        return None
    limit = settings.MAX_OUTPUT_TOKENS
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        raise FrameError(
            "invalid",
            _("max_tokens must be a whole number from 1 to %(limit)d.") % {"limit": limit},
        )
    return value


def _attachments(value: object) -> list[Upload]:
    if not isinstance(value, list):
        raise FrameError("invalid", _("attachments must be a list."))
    if len(value) > settings.MAX_ATTACHMENTS:
        raise FrameError(
            "too_large",
            _("At most %(count)d attachments per message.") % {"count": settings.MAX_ATTACHMENTS},
        )
    return [_attachment(item) for item in value]


def _attachment(item: object) -> Upload:
    """A file as base64 (`file`; or, as in OpenAI's format, an image data URL or audio): only
    bytes, so nothing here makes the server or a viewer's browser fetch a remote address. The
    bytes decide what it is (chat.attachments.recognise)."""
    if not isinstance(item, dict):
        raise FrameError("invalid", _("Each attachment must be an object."))
    kind = item.get("type")
    if kind == "file":
        file = item.get("file")
        data = file.get("data") if isinstance(file, dict) else None
        if not isinstance(data, str):
            raise FrameError("invalid", _("A file needs its bytes as base64 data."))
        return _upload(file.get("name") if isinstance(file, dict) else None, data, None)
    if kind == "image_url":
        url = (
            item.get("image_url", {}).get("url")
            if isinstance(item.get("image_url"), dict)
            else None
        )
        match = IMAGE_DATA_URL.match(url) if isinstance(url, str) else None
        if match is None:
            raise FrameError("invalid", _("Images must be PNG, JPEG, GIF or WebP data URLs."))
        return _upload(None, match.group(2), attachments.IMAGE)
    if kind == "input_audio":
        audio = item.get("input_audio")
        data = audio.get("data") if isinstance(audio, dict) else None
        fmt = audio.get("format") if isinstance(audio, dict) else None
        if not isinstance(data, str) or fmt not in AUDIO_FORMATS:
            raise FrameError("invalid", _("Audio must be base64 data in wav or mp3 format."))
        return _upload(None, data, attachments.AUDIO)
    raise FrameError("invalid", _("Attachments are file, image_url or input_audio parts."))


def _upload(name: object, data: str, expected: str | None) -> Upload:
    raw = _decoded(data)
    try:
        kind = attachments.recognise(raw)
    except attachments.Unrecognised:
        raise FrameError("unsupported_file", str(UNSUPPORTED_FILE)) from None
    if expected is not None and kind.kind != expected:
        raise FrameError("unsupported_file", str(NOT_WHAT_IT_CLAIMS[expected]))
    return Upload(attachments.clean_name(name, kind), raw, kind)


# One sentence per kind an OpenAI-style part claims (image_url, input_audio): a translation
# needs the whole sentence.
NOT_WHAT_IT_CLAIMS = {
    "image": gettext_lazy("That file is not the image it claims to be."),
    "audio": gettext_lazy("That file is not the audio it claims to be."),
}
UNSUPPORTED_FILE = gettext_lazy(
    "Only PNG, JPEG, GIF and WebP images, WAV and MP3 audio and UTF-8 text files can be attached."
)


def _decoded(data: str) -> bytes:
    limit = settings.MAX_ATTACHMENT_BYTES
    try:
        return attachments.decode(data, limit)
    except attachments.Undecodable as refused:
        if refused.reason == "too_large":
            message = _("An attachment is larger than %(size)s.") % {"size": _size(limit)}
            raise FrameError("too_large", message) from None
        if refused.reason == "empty":
            raise FrameError("invalid", _("An attachment is empty.")) from None
        raise FrameError("invalid", _("An attachment is not valid base64.")) from None
