"""ASGI entry point: HTTP goes to Django, WebSockets to Channels behind origin and auth checks.

Serve it with `python -m noboxweb.serve` (daphne with the WebSocket limits of settings)."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "noboxweb.settings")
# Django must be set up before importing code that touches models.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddleware  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.sessions import CookieMiddleware  # noqa: E402

from chat.origins import SameOriginMiddleware  # noqa: E402
from chat.routing import websocket_urlpatterns  # noqa: E402
from chat.socket_session import SocketSessionMiddleware  # noqa: E402

# Channels' AuthMiddlewareStack, with a session middleware that does not wrap every frame sent.
sockets = CookieMiddleware(
    SocketSessionMiddleware(AuthMiddleware(URLRouter(websocket_urlpatterns)))
)

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # The full origin (scheme, host, port), not only the host: a page on another port of
        # the same host must not open a socket with the user's cookies.
        "websocket": SameOriginMiddleware(sockets),
    }
)
