"""Validation of what the browser sends: every bad frame becomes a FrameError with a stable code.

The codes are part of the WebSocket protocol (docs/protocol.md)."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
IMAGE_DATA_URL = re.compile(r"^data:image/(png|jpeg|gif|webp);base64,([A-Za-z0-9+/=\s]+)$")
AUDIO_FORMATS = {"wav", "mp3"}


class FrameError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class SendRequest:
    client_id: str
    conversation_id: str | None
    text: str
    model: str
    attachments: list[dict[str, Any]] = field(default_factory=list)
    system_prompt: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None


def parse_send(frame: dict[str, Any]) -> SendRequest:
    text = _string(frame, "text", settings.MAX_MESSAGE_CHARS, default="")
    attachments = _attachments(frame.get("attachments", []))
    if not text.strip() and not attachments:
        raise FrameError("invalid", "The message is empty.")
    client_id = frame.get("client_id")
    if not isinstance(client_id, str) or not CLIENT_ID.match(client_id):
        raise FrameError("invalid", "client_id must be 1-64 letters, digits, '-' or '_'.")
    return SendRequest(
        client_id=client_id,
        conversation_id=optional_id(frame, "conversation"),
        text=text,
        model=_model(frame),
        attachments=attachments,
        system_prompt=_optional_string(frame, "system", settings.MAX_SYSTEM_PROMPT_CHARS),
        temperature=_temperature(frame.get("temperature")),
        max_tokens=_max_tokens(frame.get("max_tokens")),
    )


def optional_id(frame: dict[str, Any], key: str) -> str | None:
    value = frame.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 32:
        raise FrameError("invalid", f"{key} must be an id string.")
    return value


def required_id(frame: dict[str, Any], key: str) -> str:
    value = optional_id(frame, key)
    if value is None:
        raise FrameError("invalid", f"{key} is required.")
    return value


def optional_int(frame: dict[str, Any], key: str) -> int | None:
    value = frame.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FrameError("invalid", f"{key} must be a non-negative whole number.")
    return int(value)


def _string(frame: dict[str, Any], key: str, limit: int, default: str) -> str:
    value = frame.get(key, default)
    if not isinstance(value, str):
        raise FrameError("invalid", f"{key} must be a string.")
    if len(value) > limit:
        raise FrameError("too_large", f"{key} is longer than {limit} characters.")
    return value


def _optional_string(frame: dict[str, Any], key: str, limit: int) -> str | None:
    if frame.get(key) is None:
        return None
    return _string(frame, key, limit, default="")


def _model(frame: dict[str, Any]) -> str:
    model = frame.get("model")
    if not isinstance(model, str) or not model.strip() or len(model) > 200:
        raise FrameError("invalid", "Pick a model first.")
    return model.strip()


def _temperature(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 2:
        raise FrameError("invalid", "temperature must be a number from 0 to 2.")
    return float(value)


def _max_tokens(value: object) -> int | None:
    if value is None:
        return None
    limit = settings.MAX_OUTPUT_TOKENS
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        raise FrameError("invalid", f"max_tokens must be a whole number from 1 to {limit}.")
    return value


def _attachments(value: object) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise FrameError("invalid", "attachments must be a list.")
    if len(value) > 8:
        raise FrameError("too_large", "At most 8 attachments per message.")
    return [_attachment(item) for item in value]


def _attachment(item: object) -> dict[str, Any]:
    """Images as data URLs and audio as base64 only: nothing here makes the server or a viewer's
    browser fetch a remote address."""
    if not isinstance(item, dict):
        raise FrameError("invalid", "Each attachment must be an object.")
    kind = item.get("type")
    if kind == "image_url":
        url = (
            item.get("image_url", {}).get("url")
            if isinstance(item.get("image_url"), dict)
            else None
        )
        match = IMAGE_DATA_URL.match(url) if isinstance(url, str) else None
        if match is None:
            raise FrameError("invalid", "Images must be PNG, JPEG, GIF or WebP data URLs.")
        _check_base64(match.group(2))
        return {"type": "image_url", "image_url": {"url": url}}
    if kind == "input_audio":
        audio = item.get("input_audio")
        data = audio.get("data") if isinstance(audio, dict) else None
        fmt = audio.get("format") if isinstance(audio, dict) else None
        if not isinstance(data, str) or fmt not in AUDIO_FORMATS:
            raise FrameError("invalid", "Audio must be base64 data in wav or mp3 format.")
        _check_base64(data)
        return {"type": "input_audio", "input_audio": {"data": data, "format": fmt}}
    raise FrameError("invalid", "Attachments are image_url or input_audio parts.")


def _check_base64(data: str) -> None:
    limit = settings.MAX_ATTACHMENT_BYTES
    if len(data) * 3 // 4 > limit:
        raise FrameError("too_large", f"An attachment is larger than {limit // 1024 // 1024} MiB.")
    try:
        base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError) as exc:
        raise FrameError("invalid", "An attachment is not valid base64.") from exc
