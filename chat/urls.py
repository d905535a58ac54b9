from __future__ import annotations

from django.urls import path

from chat import views

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
    path("settings/", views.token_settings, name="settings"),
    path("api/models", views.models_list, name="models"),
]
