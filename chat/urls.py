from __future__ import annotations

from django.urls import path

from chat import share_views, views

app_name = "chat"

urlpatterns = [
    path("", views.home, name="home"),
    path("c/<str:public_id>/", views.conversation, name="conversation"),
    path("c/<str:public_id>/rename", views.rename, name="rename"),
    path("c/<str:public_id>/delete", views.delete, name="delete"),
    path("c/<str:public_id>/share", share_views.create, name="share_create"),
    path("shares/", share_views.links, name="share_links"),
    path("shares/<str:public_id>/revoke", share_views.revoke, name="share_revoke"),
    path("s/<str:token>", share_views.shared, name="shared"),
    path("s/<str:token>/continue", share_views.continue_shared, name="shared_continue"),
    path("settings/", views.token_settings, name="settings"),
    path("api/models", views.models_list, name="models"),
]
