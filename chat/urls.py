from __future__ import annotations

from django.urls import path

from chat import conversation_views, share_views, views

app_name = "chat"

urlpatterns = [
    path("", views.home, name="home"),
    path("c/<str:public_id>/", views.conversation, name="conversation"),
    path("c/<str:public_id>/messages", views.older_messages, name="messages"),
    path("c/<str:public_id>/rename", views.rename, name="rename"),
    path("c/<str:public_id>/delete", views.delete, name="delete"),
    path("c/<str:public_id>/export.json", views.export_json, name="export_json"),
    path("c/<str:public_id>/export.md", views.export_markdown, name="export_markdown"),
    path("import", views.import_conversation, name="import"),
    path("files/<str:public_id>", views.attachment, name="attachment"),
    path("c/<str:public_id>/share", share_views.create, name="share_create"),
    path("shares/", share_views.links, name="share_links"),
    path("shares/<str:public_id>/revoke", share_views.revoke, name="share_revoke"),
    path("s/<str:token>", share_views.shared, name="shared"),
    path("s/<str:token>/continue", share_views.continue_shared, name="shared_continue"),
    path("s/<str:token>/files/<str:public_id>", share_views.shared_file, name="shared_file"),
    path("settings/", views.token_settings, name="settings"),
    path("api/models", views.models_list, name="models"),
    path("api/c/<str:public_id>/usage", views.conversation_usage, name="conversation_usage"),
    # The conversation list (chat/conversation_views.py, docs/protocol.md).
    path("api/conversations", conversation_views.search_conversations, name="search"),
    path("api/conversations/<str:public_id>/rename", conversation_views.rename, name="api_rename"),
    path("api/conversations/<str:public_id>/pin", conversation_views.pin, name="pin"),
    path("api/conversations/<str:public_id>/archive", conversation_views.archive, name="archive"),
    path("api/conversations/<str:public_id>/delete", conversation_views.delete, name="api_delete"),
    path("api/conversations/<str:public_id>/restore", conversation_views.restore, name="restore"),
]
