"""Recording from the microphone: a WAV made in the page joins the message like a picked file.

Chromium's fake audio device (`--use-fake-device-for-media-stream`) stands in for a microphone:
a real capture stream, beeping. Whether the page may use it is the context's microphone
permission, granted or not, as a person's answer to the browser's prompt would be. (The
`--use-fake-ui-for-media-stream` switch is not used: it answers every prompt with yes, so a
refusal could not be tested.) Without the fake device there is no microphone at all.
"""

from __future__ import annotations

import base64
import json
import re
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect

from tests.browser.conftest import (
    QUICK,
    ChatPage,
    User,
    Users,
    launch_chromium,
    new_context,
    sign_in,
)

pytestmark = pytest.mark.browser

FAKE_MICROPHONE = "--use-fake-device-for-media-stream"


@pytest.fixture(scope="module")
def media_browser(playwright_driver: Playwright, chromium_path: str) -> Iterator[Browser]:
    """Chromium with a fake microphone (the other tests' browser has none)."""
    chromium = launch_chromium(playwright_driver, chromium_path, FAKE_MICROPHONE)
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture
def microphone() -> str:
    """The person's microphone: "allowed", "refused" (permission denied) or "missing"."""
    return "allowed"


@pytest.fixture
def context(
    request: pytest.FixtureRequest, users: Users, app_url: str, microphone: str
) -> Iterator[BrowserContext]:
    """This module's context, for the conftest's `page` and `chat` fixtures."""
    if microphone == "missing":
        ctx = new_context(request.getfixturevalue("browser"), app_url)
    else:
        granted = ["microphone"] if microphone == "allowed" else []
        ctx = new_context(request.getfixturevalue("media_browser"), app_url, permissions=granted)
    try:
        yield ctx
    finally:
        ctx.close()


def start_recording(page: Page) -> None:
    page.locator("#record").click()
    expect(page.locator("#record")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#recording")).to_be_visible()
    expect(page.locator("#announcer")).to_contain_text("Recording. Press Stop")


def record_for_a_second(page: Page) -> None:
    start_recording(page)
    # The clock counts recorded samples: at 0:01 a second of sound is in.
    expect(page.locator("#recording-time")).to_have_text("Recording 0:01", timeout=QUICK)
    page.locator("#recording-stop").click()
    expect(page.locator("#recording")).to_be_hidden()
    expect(page.locator("#record")).to_have_attribute("aria-pressed", "false")
    expect(page.locator("#composer")).to_be_focused()  # not lost with the bar's buttons


def sent_upstream(sim_url: str, text: str) -> dict[str, Any]:
    """The chat completion request the simulator received whose last message says `text`."""
    bodies = httpx.get(sim_url.removesuffix("/_f_") + "/_sim/requests", timeout=10).json()
    [body] = [b for b in bodies if text in json.dumps(b["messages"][-1]["content"])]
    return dict(body)


def audio_parts(body: dict[str, Any]) -> list[dict[str, str]]:
    content = body["messages"][-1]["content"]
    return [part["input_audio"] for part in content if part["type"] == "input_audio"]


def wav_header(data: bytes) -> dict[str, int]:
    """The fields of a canonical 44-byte PCM WAV header, checked for shape."""
    assert data[:4] == b"RIFF" and data[8:16] == b"WAVEfmt ", data[:16]
    riff_size, fmt_size, audio_format, channels, rate, byte_rate, align, bits = struct.unpack(
        "<I4x4xIHHIIHH", data[4:36]
    )
    assert data[36:40] == b"data"
    (data_size,) = struct.unpack("<I", data[40:44])
    assert riff_size == len(data) - 8 and fmt_size == 16
    assert byte_rate == rate * align and align == channels * bits // 8
    return {
        "format": audio_format,
        "channels": channels,
        "rate": rate,
        "bits": bits,
        "data": data_size,
    }


# Parsing done, modules not run yet: the moment to change what the page data says.
LOWER_THE_LIMIT = """
document.addEventListener("readystatechange", () => {
  const node = document.getElementById("page-data");
  if (document.readyState !== "interactive" || !node) return;
  const data = JSON.parse(node.textContent);
  data.limits.max_attachment_bytes = LIMIT;
  node.textContent = JSON.stringify(data);
});
"""


def send_and_finish(chat: ChatPage, text: str) -> None:
    chat.composer.fill(text)
    chat.composer.press("Enter")
    expect(chat.composer).to_have_value("", timeout=QUICK)
    chat.wait_status(chat.last_reply(), "complete")


def test_a_recording_reaches_nobox_as_wav_audio_and_plays_in_the_chat(
    chat: ChatPage, sim_url: str
) -> None:
    page = chat.page
    chat.choose_model("sim/echo")
    record_for_a_second(page)
    preview = page.locator("#attachment-previews .attachment-preview")
    expect(preview).to_have_count(1)
    expect(preview).to_contain_text(re.compile(r"♪ recording-[\d-]+\.wav"))

    send_and_finish(chat, "listen 5c1e")
    expect(chat.body(chat.last_reply())).to_contain_text("Received 0 image(s) and 1 audio part(s)")
    [audio] = audio_parts(sent_upstream(sim_url, "listen 5c1e"))
    assert audio["format"] == "wav"
    wav = base64.b64decode(audio["data"])
    header = wav_header(wav)
    assert header["format"] == 1 and header["channels"] == 1 and header["bits"] == 16
    assert 8000 <= header["rate"] <= 48000
    assert header["data"] == len(wav) - 44
    seconds = header["data"] / (header["rate"] * 2)
    assert 1 <= seconds < 20, seconds
    samples = struct.unpack(f"<{header['data'] // 2}h", wav[44:])
    assert max(map(abs, samples)) > 100, "the recording is silent: no microphone samples"

    player = chat.by_role("user").last.locator("audio.attachment-player")
    expect(player).to_have_attribute("src", re.compile(r"^/files/"))
    served = page.evaluate(
        "(url) => fetch(url).then((r) => r.arrayBuffer()).then((b) => b.byteLength)",
        player.get_attribute("src"),
    )
    assert served == len(wav)


def test_escape_discards_a_recording_and_sending_waits_for_it(chat: ChatPage) -> None:
    page = chat.page
    start_recording(page)
    expect(page.locator("#recording-time")).to_contain_text("Recording 0:0", timeout=QUICK)
    # Sending now would leave the recording behind: the page says so and sends nothing.
    chat.composer.fill("not yet")
    chat.composer.press("Enter")
    expect(page.locator("#composer-status")).to_contain_text("Stop the recording first")
    expect(chat.composer).to_have_value("not yet")
    page.keyboard.press("Escape")
    expect(page.locator("#recording")).to_be_hidden()
    expect(page.locator("#record")).to_have_attribute("aria-pressed", "false")
    expect(page.locator("#announcer")).to_have_text("Recording discarded.")
    expect(page.locator("#attachment-previews")).to_be_hidden()

    # The cancel button does the same, and the microphone is free for the next take.
    start_recording(page)
    page.locator("#recording-cancel").click()
    expect(page.locator("#recording")).to_be_hidden()
    expect(page.locator("#attachment-previews .attachment-preview")).to_have_count(0)


def test_a_recording_stops_at_the_attachment_size_limit(
    page: Page, app_url: str, sim_url: str, user: User
) -> None:
    """With a 40,044-byte limit (20,000 samples: about 1.25 s at 16 kHz) the take stops by
    itself, says why, and keeps what fits, to the byte. The limit is the page's (its page data
    says what the server accepts), lowered here before the page's modules read it."""
    limit = 40_044
    page.add_init_script(LOWER_THE_LIMIT.replace("LIMIT", str(limit)))
    sign_in(page, app_url, user)
    chat = ChatPage(page)
    chat.open("/")
    chat.choose_model("sim/echo")
    start_recording(page)
    expect(page.locator(".banner")).to_contain_text("reached the 39 KB limit", timeout=QUICK)
    expect(page.locator("#recording")).to_be_hidden()
    expect(page.locator("#attachment-previews .attachment-preview")).to_have_count(1)

    send_and_finish(chat, "capped 9d02")
    [audio] = audio_parts(sent_upstream(sim_url, "capped 9d02"))
    assert len(base64.b64decode(audio["data"])) == limit


@pytest.mark.parametrize("microphone", ["refused"])
def test_a_refused_microphone_says_how_to_allow_it(chat: ChatPage) -> None:
    page = chat.page
    page.locator("#record").click()
    expect(page.locator(".banner")).to_contain_text("Microphone access was refused")
    expect(page.locator("#recording")).to_be_hidden()
    expect(page.locator("#record")).to_have_attribute("aria-pressed", "false")


@pytest.mark.parametrize("microphone", ["missing"])
def test_no_microphone_says_so(chat: ChatPage) -> None:
    chat.page.locator("#record").click()
    expect(chat.page.locator(".banner")).to_contain_text("No microphone was found")


def test_wav_encoding(page: Page, app_url: str) -> None:
    """encodeWav, the pure part: header fields and 16-bit samples, clamped."""
    page.goto("/accounts/login/")  # any page of the app: the module is a static file
    encoded = page.evaluate(
        """async () => {
          const { encodeWav, maxSamplesFor, clockText } = await import("/static/chat/recorder.js");
          const wav = encodeWav([new Float32Array([0, 1, -1]), new Float32Array([0.5, 2])], 8000);
          return { bytes: Array.from(wav), max: maxSamplesFor(1044), clock: clockText(65.9) };
        }"""
    )
    wav = bytes(encoded["bytes"])
    assert wav_header(wav) == {"format": 1, "channels": 1, "rate": 8000, "bits": 16, "data": 10}
    assert struct.unpack("<5h", wav[44:]) == (0, 32767, -32768, 16383, 32767)
    assert encoded["max"] == 500
    assert encoded["clock"] == "1:05"
