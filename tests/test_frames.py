"""Decoding and validating what a browser (or anyone with a socket) sends: every bad input is a
FrameError with its documented code (docs/protocol.md), never another exception."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from chat.attachments import decoded_size
from chat.incoming_frames import FrameError, decode_frame, frame_ref, parse_send

LIMIT = 1024


def refused(text: str | None, bytes_data: bytes | None = None, limit: int = LIMIT) -> FrameError:
    with pytest.raises(FrameError) as caught:
        decode_frame(text, bytes_data, limit)
    return caught.value


def send(**fields: Any) -> dict[str, Any]:
    return {"type": "send", "client_id": "c1", "text": "hi", "model": "sim/echo", **fields}


def audio(data: str) -> dict[str, Any]:
    return {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}


def image(data: str, kind: str = "png") -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": f"data:image/{kind};base64,{data}"}}


def send_refused(frame: dict[str, Any]) -> FrameError:
    with pytest.raises(FrameError) as caught:
        parse_send(frame)
    return caught.value


# --- decode_frame -------------------------------------------------------------------------------


def test_a_json_object_with_a_string_type_is_decoded() -> None:
    assert decode_frame('{"type": "ping"}', None, LIMIT) == {"type": "ping"}


def test_binary_frames_are_bad_frames() -> None:
    assert refused(None, b'{"type": "ping"}').code == "bad_frame"


@pytest.mark.parametrize("text", ["", "{", "nope", "[1, 2]", '"ping"', "42", "null"])
def test_anything_but_a_json_object_is_a_bad_frame(text: str) -> None:
    assert refused(text).code == "bad_frame"


@pytest.mark.parametrize(("opening", "closing"), [("[", "]"), ('{"a":', "}")])
def test_deep_nesting_is_a_bad_frame_not_a_recursion_error(opening: str, closing: str) -> None:
    deep = '{"type": "send", "text": ' + opening * 100_000 + "1" + closing * 100_000 + "}"
    assert refused(deep, limit=10**7).code == "bad_frame"


@pytest.mark.parametrize("kind", [["send"], {"send": 1}, 3, 1.5, True, None])
def test_a_type_that_is_not_a_string_is_an_unknown_type(kind: object) -> None:
    error = refused(json.dumps({"type": kind, "client_id": "c1"}))
    assert error.code == "unknown_type"
    assert error.ref == {"client_id": "c1"}


def test_a_missing_type_is_an_unknown_type() -> None:
    assert refused('{"client_id": "c1"}').code == "unknown_type"


def test_the_size_limit_counts_utf8_bytes_not_characters() -> None:
    # 300 characters of 4 bytes each: 1,200 bytes on the wire, over a 1,024-byte limit.
    frame = json.dumps({"type": "send", "text": "😀" * 300}, ensure_ascii=False)
    assert len(frame) < LIMIT
    assert refused(frame).code == "too_large"


def test_a_frame_of_exactly_the_limit_is_accepted() -> None:
    frame = json.dumps({"type": "send", "text": ""})
    padded = frame[:-1] + " " * (LIMIT - len(frame.encode())) + "}"
    assert len(padded.encode()) == LIMIT
    assert decode_frame(padded, None, LIMIT)["type"] == "send"
    assert refused(padded + " ").code == "too_large"


def test_two_byte_characters_count_twice() -> None:
    frame = json.dumps({"type": "send", "text": "é" * 500}, ensure_ascii=False)
    assert len(frame) < LIMIT < len(frame.encode())
    assert refused(frame).code == "too_large"


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        (r'{"type": "send", "client_id": "c1", "text": "cut \ud83d"}', "text"),
        (r'{"type": "send", "client_id": "c1", "text": "\ude00 tail"}', "text"),
        (r'{"type": "send", "client_id": "c1", "system": "\ud83d"}', "system"),
        (r'{"type": "send", "client_id": "c1", "model": "m\udfff"}', "model"),
        (r'{"type": "send", "client_id": "c1", "attachments": [{"x": ["\ud800"]}]}', "attachments"),
        (r'{"type": "send", "client_id": "c1", "attachments": [{"\ud800": 1}]}', "attachments"),
        (r'{"type": "send", "client_id": "c1", "extra": {"deep": [[["\ud83d"]]]}}', "extra"),
    ],
)
def test_a_lone_surrogate_anywhere_is_invalid_and_names_the_field(frame: str, field: str) -> None:
    error = refused(frame)
    assert error.code == "invalid"
    assert error.message.startswith(f"{field} contains a broken character")
    assert error.ref == {"client_id": "c1"}


def test_a_lone_surrogate_in_a_field_name_is_invalid_without_quoting_it() -> None:
    error = refused(r'{"type": "send", "\ud83d": "x"}')
    assert error.code == "invalid"
    assert "\ud83d" not in error.message


def test_a_lone_surrogate_in_the_client_id_is_invalid_and_not_echoed() -> None:
    error = refused(r'{"type": "send", "client_id": "c\ud83d", "conversation": "k1"}')
    assert error.code == "invalid"
    assert error.ref == {"conversation": "k1"}


def test_a_whole_emoji_is_fine_escaped_or_not() -> None:
    assert decode_frame(r'{"type": "send", "text": "\ud83d\ude00"}', None, LIMIT)["text"] == "😀"
    assert decode_frame('{"type": "send", "text": "😀"}', None, LIMIT)["text"] == "😀"


def test_frame_ref_echoes_only_short_string_ids() -> None:
    assert frame_ref({"client_id": "c1", "conversation": "k1", "text": "t"}) == {
        "client_id": "c1",
        "conversation": "k1",
    }
    assert frame_ref({"client_id": ["c1"], "conversation": "k" * 65}) == {}
    assert frame_ref({}) == {}


# --- attachments: strict base64, size from the length -----------------------------------------


WAV = b"RIFF\x00\x00\x00\x00WAVE"
PNG = b"\x89PNG\r\n\x1a\n\x00"
WEBP = b"RIFF\x00\x00\x00\x00WEBPVP8 "


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def file(name: object, data: bytes) -> dict[str, Any]:
    return {"type": "file", "file": {"name": name, "data": b64(data)}}


def test_files_are_recognised_from_their_bytes_whatever_their_names() -> None:
    request = parse_send(
        send(
            attachments=[
                audio(b64(WAV)),
                image(b64(PNG)),
                image(b64(WEBP), "webp"),
                file("photo.txt", PNG),  # a name is only a label
                file("../../etc/notes", "naïve\n".encode()),
                file(None, b"ID3\x04rest of an mp3"),
            ]
        )
    )
    kinds = [(u.kind.kind, u.kind.content_type, u.kind.audio_format) for u in request.attachments]
    assert kinds == [
        ("audio", "audio/wav", "wav"),
        ("image", "image/png", ""),
        ("image", "image/webp", ""),
        ("image", "image/png", ""),
        ("text", "text/plain; charset=utf-8", ""),
        ("audio", "audio/mpeg", "mp3"),
    ]
    assert [u.name for u in request.attachments][3:] == ["photo.txt", "notes", "audio"]
    assert request.attachments[0].data == WAV


@pytest.mark.parametrize(
    ("attachment", "message"),
    [
        (file("a.bin", bytes(range(256))), "Only PNG, JPEG, GIF and WebP images"),
        (file("nul.txt", b"text\x00with a NUL"), "Only PNG, JPEG, GIF and WebP images"),
        (image(b64(WAV)), "That file is not the image it claims to be."),
        (audio(b64(PNG)), "That file is not the audio it claims to be."),
    ],
)
def test_bytes_that_are_no_allowed_kind_of_file_are_refused(
    attachment: dict[str, Any], message: str
) -> None:
    error = send_refused(send(attachments=[attachment]))
    assert error.code == "unsupported_file"
    assert error.message.startswith(message)


def test_a_file_part_without_base64_data_is_invalid() -> None:
    error = send_refused(send(attachments=[{"type": "file", "file": {"name": "x"}}]))
    assert (error.code, error.message) == ("invalid", "A file needs its bytes as base64 data.")


@pytest.mark.parametrize(
    "data",
    [
        "***",
        "AAAA***",
        "AA AA",
        "AAAA\nAAAA",
        " AAAA",
        "AAA",  # missing padding
        "A===",
        "AA=A",
        "-_-_",  # the URL-safe alphabet is another encoding
        "AAAA€",
    ],
)
def test_audio_that_is_not_strict_base64_is_invalid(data: str) -> None:
    error = send_refused(send(attachments=[audio(data)]))
    assert (error.code, error.message) == ("invalid", "An attachment is not valid base64.")


@pytest.mark.parametrize("data", ["***", "iVBO RwA=", "iVBORw0K\n"])
def test_an_image_data_url_that_is_not_strict_base64_is_invalid(data: str) -> None:
    error = send_refused(send(attachments=[image(data)]))
    assert (error.code, error.message) == ("invalid", "An attachment is not valid base64.")


def test_an_empty_attachment_is_invalid() -> None:
    assert send_refused(send(attachments=[audio("")])).code == "invalid"


def test_an_attachment_over_the_limit_is_too_large_whatever_its_content(
    settings: Any,
) -> None:
    settings.MAX_ATTACHMENT_BYTES = 1024
    # 1,028 bytes once decoded; the content is not even base64, so only a length check sees it.
    error = send_refused(send(attachments=[audio("*" * 1372)]))
    assert error.code == "too_large"
    assert "1024 bytes" in error.message


def test_an_attachment_of_exactly_the_limit_is_accepted(settings: Any) -> None:
    settings.MAX_ATTACHMENT_BYTES = 1024
    exact = base64.b64encode(WAV + b"\x00" * (1024 - len(WAV))).decode()
    assert parse_send(send(attachments=[audio(exact)])).attachments
    over = base64.b64encode(WAV + b"\x00" * (1025 - len(WAV))).decode()
    assert send_refused(send(attachments=[audio(over)])).code == "too_large"


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 5, 1000, 1001, 1002])
def test_decoded_size_is_exact_for_valid_base64(size: int) -> None:
    assert decoded_size(base64.b64encode(b"x" * size).decode()) == size


def test_a_nul_character_is_invalid_before_it_reaches_the_database():
    with pytest.raises(FrameError) as refused:
        decode_frame(json.dumps({"type": "send", "text": "a\u0000b"}), None, 1024)
    assert refused.value.code == "invalid"
    assert refused.value.message.startswith("text contains a broken character")
