from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from chat.models import Conversation, Message, NoboxToken, User

admin.site.register(User, UserAdmin)


@admin.register(NoboxToken)
class NoboxTokenAdmin(admin.ModelAdmin[NoboxToken]):
    # The ciphertext is never shown; the token itself is only ever known by its last four.
    list_display = ["user", "last4", "created_at", "last_used_at", "last_verified_at"]
    fields = ("user", "last4", "created_at", "updated_at", "last_used_at", "last_verified_at")
    readonly_fields = fields

    def has_add_permission(self, request: object, obj: object = None) -> bool:
        return False


class MessageInline(admin.TabularInline[Message, Conversation]):
    model = Message
    fields = ("seq", "role", "status", "model", "total_tokens", "cost", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin[Conversation]):
    list_display = ["public_id", "owner", "title", "model", "updated_at"]
    list_filter = ["model"]
    search_fields = ["title", "owner__username"]
    readonly_fields = ["public_id", "owner", "next_seq", "created_at", "updated_at"]
    inlines = [MessageInline]
