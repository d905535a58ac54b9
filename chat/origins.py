"""Same-origin check for the chat WebSocket.

Browsers send cookies with a cross-site WebSocket handshake (and SameSite counts neither scheme
nor port), so the `Origin` header is the only thing telling the chat's own page from a page on
another port or scheme of the same host. A socket is accepted only from the origin of the page
that opens it: the scheme the request came in with (ws -> http, wss -> https) and exactly the
host and port of its `Host` header, that host being one of ALLOWED_HOSTS; or from an origin
listed in CSRF_TRUSTED_ORIGINS (the same list that lets forms be posted).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

DEFAULT_PORTS = {"http": 80, "https": 443}


class Origin(NamedTuple):
    scheme: str
    host: str
    port: int


def parse_origin(value: str) -> Origin | None:
    """An http(s) origin as (scheme, host, port) with the default port filled in; None for
    anything else ("null", a path, user info, a bad port)."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or parts.username is not None:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    return Origin(scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme])


def page_origin(host_header: str, secure: bool, allowed_hosts: list[str]) -> Origin | None:
    """The origin of the page served under `host_header`, if that host is one of ours."""
    domain, _port = split_domain_port(host_header)
    if not domain or not validate_host(domain, allowed_hosts):
        return None
    return parse_origin(f"{'https' if secure else 'http'}://{host_header}")


def origin_allowed(
    origin: str | None,
    host_header: str | None,
    secure: bool,
    allowed_hosts: list[str],
    trusted_origins: Iterable[str] = (),
) -> bool:
    """Whether a socket opened from `origin` belongs to this site. Pure: the middleware below
    reads the arguments from the handshake and the settings."""
    claimed = parse_origin(origin) if origin else None
    if claimed is None:
        return False
    if host_header and claimed == page_origin(host_header, secure, allowed_hosts):
        return True
    return any(_trusted(claimed, trusted) for trusted in trusted_origins)


def _trusted(claimed: Origin, trusted: str) -> bool:
    """`claimed` is the CSRF_TRUSTED_ORIGINS entry `trusted`, or under it for an entry like
    "https://*.example.com" (which Django reads as example.com and every subdomain)."""
    wildcard = "://*." in trusted
    entry = parse_origin(trusted.replace("://*.", "://", 1) if wildcard else trusted)
    if entry is None or (claimed.scheme, claimed.port) != (entry.scheme, entry.port):
        return False
    return claimed.host == entry.host or (wildcard and claimed.host.endswith("." + entry.host))


class SameOriginMiddleware:
    """ASGI middleware refusing a WebSocket handshake from any other origin, as Channels'
    OriginValidator does (the handshake is answered 403, so the browser sees close code 1006)."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not _handshake_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)


def _handshake_allowed(scope: dict[str, Any]) -> bool:
    headers = _headers(scope)
    return origin_allowed(
        headers.get("origin"),
        headers.get("host"),
        _secure(scope, headers),
        _allowed_hosts(),
        settings.CSRF_TRUSTED_ORIGINS,
    )


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    """The handshake's headers; a header sent twice is refused rather than guessed at."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", []):
        name = raw_name.decode("latin-1").lower()
        if name in ("origin", "host") and name in headers:
            headers[name] = ""
            continue
        headers[name] = raw_value.decode("latin-1")
    return headers


def _secure(scope: dict[str, Any], headers: dict[str, str]) -> bool:
    """Whether the browser connected over TLS: `wss` in the scope (a server terminating TLS
    itself), or the proxy header Django trusts for HTTP (SECURE_PROXY_SSL_HEADER)."""
    if scope.get("scheme") == "wss":
        return True
    proxy_header: tuple[str, str] | None = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header is None:
        return False
    name, expected = proxy_header
    # Django spells it as a META key ("HTTP_X_FORWARDED_PROTO"); the scope has the raw header.
    header = name.removeprefix("HTTP_").replace("_", "-").lower()
    return headers.get(header, "").split(",")[0].strip() == expected


def _allowed_hosts() -> list[str]:
    # As Django itself does for HTTP: in DEBUG with no ALLOWED_HOSTS, the local names.
    if settings.DEBUG and not settings.ALLOWED_HOSTS:
        return [".localhost", "127.0.0.1", "[::1]"]
    return list(settings.ALLOWED_HOSTS)
