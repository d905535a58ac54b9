"""The WebSocket same-origin check: only the chat's own page (same scheme, host and port) or a
CSRF-trusted origin may open a socket that carries the user's cookies."""

from __future__ import annotations

from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client

from chat.models import User
from chat.origins import origin_allowed, parse_origin

HOSTS = ["chat.example.com", "127.0.0.1", "localhost", "[::1]"]


@pytest.mark.parametrize(
    ("origin", "host", "secure"),
    [
        ("http://127.0.0.1:8000", "127.0.0.1:8000", False),
        ("http://localhost:8000", "localhost:8000", False),
        ("https://chat.example.com", "chat.example.com", True),
        ("https://chat.example.com:443", "chat.example.com", True),
        ("https://chat.example.com", "chat.example.com:443", True),
        ("http://chat.example.com", "chat.example.com:80", False),
        ("HTTPS://Chat.Example.COM", "chat.example.com", True),
        ("http://[::1]:8000", "[::1]:8000", False),
    ],
)
def test_the_pages_own_origin_is_allowed(origin: str, host: str, secure: bool) -> None:
    assert origin_allowed(origin, host, secure, HOSTS)


@pytest.mark.parametrize(
    ("origin", "host", "secure"),
    [
        # another port of the same host: the attack from issue 8
        ("http://127.0.0.1:9999", "127.0.0.1:8000", False),
        ("http://127.0.0.1", "127.0.0.1:8000", False),
        ("https://chat.example.com:8443", "chat.example.com", True),
        # another scheme: plain http pages must not reach a wss socket, nor the reverse
        ("http://chat.example.com", "chat.example.com", True),
        ("https://chat.example.com", "chat.example.com", False),
        ("http://chat.example.com:443", "chat.example.com:443", True),
        # another host, or a host that is not ours at all
        ("http://localhost:8000", "127.0.0.1:8000", False),
        ("https://evil.example", "evil.example", True),
        ("https://chat.example.com.evil.example", "chat.example.com", True),
        # no usable origin
        (None, "127.0.0.1:8000", False),
        ("", "127.0.0.1:8000", False),
        ("null", "127.0.0.1:8000", False),
        ("file://", "127.0.0.1:8000", False),
        ("chrome-extension://abcdef", "127.0.0.1:8000", False),
        ("http://127.0.0.1:8000/page", "127.0.0.1:8000", False),
        ("http://user@127.0.0.1:8000", "127.0.0.1:8000", False),
        ("http://127.0.0.1:99999", "127.0.0.1:99999", False),
        # no usable Host
        ("http://127.0.0.1:8000", None, False),
        ("http://127.0.0.1:8000", "", False),
    ],
)
def test_any_other_origin_is_refused(origin: str | None, host: str | None, secure: bool) -> None:
    assert not origin_allowed(origin, host, secure, HOSTS)


def test_a_host_outside_allowed_hosts_is_refused_even_from_itself() -> None:
    assert not origin_allowed("http://evil.example:8000", "evil.example:8000", False, HOSTS)


def test_csrf_trusted_origins_are_allowed_exactly() -> None:
    trusted = ["https://chat.example.com", "http://intranet.example:8080"]
    # e.g. a proxy that rewrites Host: the page's origin is not the socket's Host
    assert origin_allowed("https://chat.example.com", "127.0.0.1:8001", False, HOSTS, trusted)
    assert origin_allowed("http://intranet.example:8080", "127.0.0.1:8001", False, HOSTS, trusted)
    assert not origin_allowed("http://chat.example.com", "127.0.0.1:8001", False, HOSTS, trusted)
    assert not origin_allowed("http://intranet.example", "127.0.0.1:8001", False, HOSTS, trusted)


def test_a_wildcard_trusted_origin_covers_its_subdomains_on_its_scheme_and_port() -> None:
    trusted = ["https://*.example.com"]
    for origin in ("https://a.example.com", "https://b.a.example.com", "https://example.com"):
        assert origin_allowed(origin, "127.0.0.1", False, HOSTS, trusted)
    for origin in ("http://a.example.com", "https://a.example.com:8443", "https://xexample.com"):
        assert not origin_allowed(origin, "127.0.0.1", False, HOSTS, trusted)


def test_parse_origin_fills_in_default_ports() -> None:
    assert parse_origin("https://a.test") == ("https", "a.test", 443)
    assert parse_origin("http://a.test") == ("http", "a.test", 80)
    assert parse_origin("http://a.test:81") == ("http", "a.test", 81)


# --- the handshake, through the real ASGI application --------------------------------------------


async def handshake(headers: list[tuple[bytes, bytes]], **scope: object) -> tuple[bool, object]:
    from noboxweb.asgi import application

    communicator = WebsocketCommunicator(application, "/ws/chat/", headers=headers)
    communicator.scope.update(scope)
    connected, detail = await communicator.connect()
    if connected:
        assert await communicator.receive_json_from(timeout=5) == {"type": "hello"}
        await communicator.disconnect()
    return connected, detail


async def session_cookie(client: Client, user: User) -> tuple[bytes, bytes]:
    await client.aforce_login(user)
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


@pytest.mark.django_db(transaction=True)
async def test_the_same_origin_opens_a_socket(alice: User, client: Client) -> None:
    cookie = await session_cookie(client, alice)
    headers = [(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000"), cookie]
    assert (await handshake(headers))[0]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "headers",
    [
        [(b"origin", b"http://127.0.0.1:9999"), (b"host", b"127.0.0.1:8000")],
        [(b"origin", b"https://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000")],
        [(b"host", b"127.0.0.1:8000")],
        [(b"origin", b"http://127.0.0.1:8000")],
        [(b"origin", b"https://evil.example"), (b"host", b"evil.example")],
        [
            (b"origin", b"http://127.0.0.1:8000"),
            (b"origin", b"http://127.0.0.1:9999"),
            (b"host", b"127.0.0.1:8000"),
        ],
    ],
    ids=["other-port", "other-scheme", "no-origin", "no-host", "other-host", "two-origins"],
)
async def test_any_other_origin_is_refused_at_the_handshake(
    alice: User, client: Client, headers: list[tuple[bytes, bytes]]
) -> None:
    cookie = await session_cookie(client, alice)
    connected, _ = await handshake([*headers, cookie])
    assert not connected


@pytest.mark.django_db(transaction=True)
async def test_behind_a_tls_proxy_the_https_page_is_the_same_origin(
    alice: User, client: Client, settings: Any
) -> None:
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    cookie = await session_cookie(client, alice)
    page = [(b"origin", b"https://localhost"), (b"host", b"localhost"), cookie]
    assert (await handshake([*page, (b"x-forwarded-proto", b"https")]))[0]
    assert not (await handshake([*page, (b"x-forwarded-proto", b"http")]))[0]
    assert not (await handshake(page))[0]


@pytest.mark.django_db(transaction=True)
async def test_a_wss_scope_is_an_https_page(alice: User, client: Client) -> None:
    cookie = await session_cookie(client, alice)
    page = [(b"origin", b"https://localhost"), (b"host", b"localhost"), cookie]
    assert (await handshake(page, scheme="wss"))[0]
    assert not (await handshake(page, scheme="ws"))[0]
