"""A message too large for the server: the page says so once and keeps the draft, instead of
reconnecting and resending the same frame forever ("Reconnecting…" for good)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, WebSocket, expect

from tests.browser.conftest import QUICK, ChatPage, User, sign_in
from tests.servers import app_server

pytestmark = pytest.mark.browser

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def plain_daphne_url(env: dict[str, str], var_dir: Path) -> Iterator[str]:
    """Plain daphne, whose 1 MiB limit drops a connection with no close code: what a browser
    meets behind a server or proxy not set up as documented."""
    with app_server(env, var_dir / "plain-daphne.log", ["daphne"]) as (url, _):
        yield url


@pytest.fixture(scope="module")
def small_limit_url(env: dict[str, str], var_dir: Path) -> Iterator[str]:
    """noboxweb.serve with a 256 KiB limit: 1009 for frames far smaller than the page's own
    "large" threshold, so only the close code can tell the page the message is too large."""
    limits = ["--websocket-max-message-size", str(MIB // 4)]
    with app_server(env, var_dir / "small-limit.log", ["noboxweb.serve", *limits]) as (url, _):
        yield url


def images(tmp_path: Path, *sizes: int) -> list[Path]:
    paths = []
    for number, size in enumerate(sizes):
        path = tmp_path / f"picture-{number}.png"
        path.write_bytes(os.urandom(size))  # the page and the server only check type and size
        paths.append(path)
    return paths


def send_refused_once(page: Page, base_url: str, user: User, files: list[Path]) -> None:
    """Sends `files` from the chat page at `base_url`; checks the page refuses the message once,
    keeps the draft and does not send the frame again after reconnecting."""
    sockets: list[WebSocket] = []
    large_frames: list[int] = []  # over 256 KiB

    def watch(socket: WebSocket) -> None:
        sockets.append(socket)
        socket.on(
            "framesent",
            lambda payload: large_frames.append(len(payload)) if len(payload) > MIB // 4 else None,
        )

    page.on("websocket", watch)
    sign_in(page, base_url, user)
    chat = ChatPage(page)
    chat.open(f"{base_url}/")
    chat.choose_model("sim/echo")
    previews = page.locator("#attachment-previews .attachment-preview")
    page.locator("#attach-input").set_input_files(files)
    expect(previews).to_have_count(len(files))
    chat.composer.fill("big pictures")
    chat.composer.press("Enter")

    banner = page.locator(".banner").filter(has_text="too large to send")
    expect(banner).to_be_visible(timeout=QUICK * 3)
    # The draft stays, editable, for the user to remove an attachment.
    expect(chat.composer).to_have_value("big pictures")
    expect(chat.composer).not_to_have_attribute("readonly", "")
    expect(previews).to_have_count(len(files))
    # The page reconnects, and does not send the frame again on the new connection.
    chat.wait_connected()
    page.wait_for_timeout(3000)
    assert len(large_frames) == 1, f"the large frame was sent {len(large_frames)} times"
    assert len(sockets) == 2, f"{len(sockets) - 1} reconnects"
    expect(banner).to_have_count(1)


def test_a_message_over_the_frame_limit_is_refused_once_and_kept(
    page: Page, app_url: str, user: User, tmp_path: Path
) -> None:
    # Two 7 MiB images pass the composer's 8 MB check each, but as base64 in one frame they are
    # about 18.7 MiB: over the 12 MiB MAX_FRAME_BYTES, so the server closes the socket with 1009.
    send_refused_once(page, app_url, user, images(tmp_path, 7 * MIB, 7 * MIB))


def test_a_large_message_whose_connection_drops_is_refused_once_and_kept(
    page: Page, plain_daphne_url: str, user: User, tmp_path: Path
) -> None:
    # The case: a 2.4 MB picture, which plain daphne cuts off without a close code.
    send_refused_once(page, plain_daphne_url, user, images(tmp_path, int(2.4 * 10**6)))


def test_a_message_closed_with_1009_is_refused_once_whatever_its_size(
    page: Page, small_limit_url: str, user: User, tmp_path: Path
) -> None:
    send_refused_once(page, small_limit_url, user, images(tmp_path, MIB // 2))
