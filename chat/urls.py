from __future__ import annotations

from django.urls import path

from chat import views

app_name = "chat"

urlpatterns = [
    path("", views.home, name="home"),
    path("c/<str:public_id>/", views.conversation, name="conversation"),
    path("c/<str:public_id>/rename", views.rename, name="rename"),
    path("c/<str:public_id>/delete", views.delete, name="delete"),
    path("settings/", views.token_settings, name="settings"),
    path("api/models", views.models_list, name="models"),
    path("api/c/<str:public_id>/usage", views.conversation_usage, name="conversation_usage"),
]
