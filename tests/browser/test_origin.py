"""A page on another port of the same host cannot open the chat socket with the user's cookies.

Cookies are not bound to a port and SameSite ignores ports, so Chromium sends the session cookie
with such a handshake: only the server's origin check stands between that page and the user's
chat (and Nobox token)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.sync_api import Page

from tests.browser.conftest import QUICK, ChatPage, User, sign_in

pytestmark = pytest.mark.browser

# The other page: opens the chat socket and writes down everything that happens to it.
ATTACK_PAGE = """<!doctype html><title>elsewhere</title><script>
window.events = [];
const ws = new WebSocket(new URLSearchParams(location.search).get("socket"));
ws.onopen = () => events.push("open");
ws.onmessage = (e) => events.push("message " + e.data);
ws.onclose = (e) => events.push("close " + e.code);
</script>"""


class AttackPage(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's spelling)
        body = ATTACK_PAGE.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def other_port_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), AttackPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_page_on_another_port_cannot_open_the_socket(
    page: Page, app_url: str, user: User, other_port_url: str
) -> None:
    sign_in(page, app_url, user)
    # The user's own page connects: the cookie is good.
    ChatPage(page).open("/")
    socket_url = app_url.replace("http://", "ws://", 1) + "/ws/chat/"
    page.goto(f"{other_port_url}/?socket={socket_url}")
    page.wait_for_function(
        "window.events.some((e) => e.startsWith('close') || e.startsWith('message'))",
        timeout=QUICK,
    )
    events = page.evaluate("window.events")
    assert not any(event.startswith("message") for event in events), events
    assert "open" not in events, events
