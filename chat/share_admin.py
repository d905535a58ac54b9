"""Shared links in the Django admin: every link with its owner, conversation, kind, views and
state, revocable (audited); and the team's sharing policy. Imported by chat.admin."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from chat import sharing
from chat.models import ShareLink, ShareSettings, User


@admin.register(ShareLink)
class ShareLinkAdmin(admin.ModelAdmin[ShareLink]):
    list_display = (
        "public_id",
        "owner",
        "conversation",
        "kind",
        "created_at",
        "expires_at",
        "view_count",
        "last_viewed_at",
        "state",
    )
    list_filter = ("kind", ("revoked_at", admin.EmptyFieldListFilter))
    list_select_related = ("owner", "conversation")
    search_fields = ("public_id", "owner__username", "conversation__title")
    date_hierarchy = "created_at"
    actions = ("revoke_links",)
    # Nothing here is edited by hand: links are made by their owners and only revoked here.
    readonly_fields = (
        "public_id",
        "owner",
        "conversation",
        "kind",
        "snapshot_seq",
        "created_at",
        "expires_at",
        "revoked_at",
        "view_count",
        "last_viewed_at",
        "show_owner_name",
        "show_cost",
    )
    exclude = ("token_hash",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description=gettext_lazy("state"))
    def state(self, link: ShareLink) -> str:
        return link.state

    @admin.action(
        description=gettext_lazy("Revoke selected links (open viewers are closed)"),
        permissions=["change"],
    )
    def revoke_links(self, request: HttpRequest, queryset: QuerySet[ShareLink]) -> None:
        actor = request.user if isinstance(request.user, User) else None
        revoked = sum(
            sharing.revoke_link(link, actor, request=request)
            for link in queryset.select_related("owner", "conversation")
        )
        messages.success(request, _("%(count)d link(s) revoked.") % {"count": revoked})


@admin.register(ShareSettings)
class ShareSettingsAdmin(admin.ModelAdmin[ShareSettings]):
    list_display = ("__str__", "audience")

    def has_add_permission(self, request: HttpRequest) -> bool:
        # One row (ShareSettings.current() makes it); the list offers it to edit.
        return not ShareSettings.objects.exists() and super().has_add_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> Any:
        ShareSettings.current()
        return super().changelist_view(request, extra_context)
