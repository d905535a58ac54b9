from __future__ import annotations

from django.urls import path

from chat.consumers import ChatConsumer
from chat.share_consumer import ShareViewerConsumer

websocket_urlpatterns = [
    path("ws/chat/", ChatConsumer.as_asgi()),
    path("ws/share/<str:token>/", ShareViewerConsumer.as_asgi()),
]
