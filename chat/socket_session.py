"""The Django session of a WebSocket, from its cookie.

Channels' `SessionMiddleware` also wraps `send`, to save a modified session and set its cookie on
an HTTP response; on a socket it only costs: it looks at the session on every frame sent (about
3 % of the server's CPU while replies stream). A socket never changes its session, so this
middleware only puts the session in the scope. It goes inside Channels' `CookieMiddleware`.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.conf import settings


class SocketSessionMiddleware:
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        store = import_module(settings.SESSION_ENGINE).SessionStore
        session_key = scope["cookies"].get(settings.SESSION_COOKIE_NAME)
        return await self.inner(dict(scope, session=store(session_key)), receive, send)
