"""Files in the chat: pasted, dropped or picked, shown from the server (never inline bytes),
opened larger, played, downloaded."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ChatPage

pytestmark = pytest.mark.browser

PIXEL = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
WAV = b"RIFF$\x00\x00\x00WAVEfmt " + bytes(24)

PASTE_IMAGE = """(b64) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const data = new DataTransfer();
  data.items.add(new File([bytes], "pasted.png", { type: "image/png" }));
  const init = { clipboardData: data, bubbles: true, cancelable: true };
  document.querySelector("#composer").dispatchEvent(new ClipboardEvent("paste", init));
}"""


def test_a_pasted_image_is_sent_shown_from_the_server_and_opens_larger(chat: ChatPage) -> None:
    page = chat.page
    chat.choose_model("sim/echo")
    page.evaluate(PASTE_IMAGE, PIXEL)
    expect(page.locator("#attachment-previews .attachment-preview")).to_have_count(1)
    chat.composer.fill("what is this?")
    chat.composer.press("Enter")

    shown = chat.by_role("user").last.locator("img.attachment-image")
    expect(shown).to_have_attribute("src", re.compile(r"^/files/"))
    expect(shown).to_have_js_property("complete", True)
    assert shown.evaluate("img => img.naturalWidth") == 1, "the image did not load from /files/"
    chat.wait_status(chat.last_reply(), "complete")
    expect(chat.body(chat.last_reply())).to_contain_text("Received 1 image(s)")

    shown.click()
    viewer = page.locator("dialog.image-viewer[open] img")
    expect(viewer).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("dialog.image-viewer")).to_have_count(0)


def test_picked_audio_plays_and_a_code_file_downloads(chat: ChatPage, tmp_path: Path) -> None:
    page = chat.page
    chat.choose_model("sim/echo")
    code, tone = tmp_path / "hello.py", tmp_path / "tone.wav"
    code.write_text("print('hello')\n")
    tone.write_bytes(WAV)
    page.locator("#attach-input").set_input_files([code, tone])
    expect(page.locator("#attachment-previews .attachment-preview")).to_have_count(2)
    chat.composer.fill("two files")
    chat.composer.press("Enter")

    message = chat.by_role("user").last
    link = message.locator("a.attachment-file")
    expect(link).to_have_text("📄 hello.py")
    expect(message.locator("audio.attachment-player")).to_have_count(1)
    href = link.get_attribute("href") or ""
    assert href.startswith("/files/")
    downloaded = page.evaluate("(url) => fetch(url).then((r) => r.text())", href)
    assert downloaded == "print('hello')\n"
    # The model was sent the code as text.
    chat.wait_status(chat.last_reply(), "complete")
    expect(chat.body(chat.last_reply())).to_contain_text("Received 0 image(s) and 1 audio part(s)")


def test_base64_never_travels_back_to_the_page(chat: ChatPage) -> None:
    frames: list[str] = []
    chat.page.on("websocket", lambda ws: ws.on("framereceived", lambda p: frames.append(str(p))))
    chat.page.reload()
    chat.wait_connected()
    chat.choose_model("sim/echo")
    chat.page.evaluate(PASTE_IMAGE, PIXEL)
    chat.composer.fill("again")
    chat.composer.press("Enter")
    chat.wait_status(chat.last_reply(), "complete")
    assert frames, "no frames were seen"
    assert not [frame for frame in frames if PIXEL[:40] in frame], "image bytes came back"
