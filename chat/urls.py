from __future__ import annotations

from django.urls import path

from chat import conversation_views, views

app_name = "chat"

urlpatterns = [
    path("", views.home, name="home"),
    path("c/<str:public_id>/", views.conversation, name="conversation"),
    path("c/<str:public_id>/rename", views.rename, name="rename"),
    path("c/<str:public_id>/delete", views.delete, name="delete"),
    path("settings/", views.token_settings, name="settings"),
    path("api/models", views.models_list, name="models"),
    # The conversation list (chat/conversation_views.py, docs/protocol.md).
    path("api/conversations", conversation_views.search_conversations, name="search"),
    path("api/conversations/<str:public_id>/rename", conversation_views.rename, name="api_rename"),
    path("api/conversations/<str:public_id>/pin", conversation_views.pin, name="pin"),
    path("api/conversations/<str:public_id>/archive", conversation_views.archive, name="archive"),
    path("api/conversations/<str:public_id>/delete", conversation_views.delete, name="api_delete"),
    path("api/conversations/<str:public_id>/restore", conversation_views.restore, name="restore"),
]
