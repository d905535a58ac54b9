"""The Django admin, shaped so a team admin needs no shell: users, tokens, audit trail.

Tokens are write-only here: a form field takes a new one, lists show the last four characters,
and every change goes through chat.tokens so it is encrypted and audited.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse

from chat import audit, tokens, upstream
from chat.models import AuditEvent, Conversation, Message, NoboxToken, User
from chat.nobox import NoboxError

Action = AuditEvent.Action


def _actor(request: HttpRequest) -> User | None:
    return request.user if isinstance(request.user, User) else None


# --- users ---------------------------------------------------------------------------------------

# Flags whose change is audited: field -> (event when turned on, event when turned off).
AUDITED_FLAGS = {
    "is_active": (Action.USER_REACTIVATED, Action.USER_DEACTIVATED),
    "is_staff": (Action.USER_MADE_STAFF, Action.USER_STAFF_REMOVED),
    "may_use_team_token": (Action.USER_TEAM_TOKEN_ALLOWED, Action.USER_TEAM_TOKEN_DENIED),
}


def audit_user_save(before: dict[str, Any] | None, user: User, request: HttpRequest) -> None:
    if before is None:
        audit.record(Action.USER_CREATED, actor=_actor(request), target=user, request=request)
        return
    for flag, (turned_on, turned_off) in AUDITED_FLAGS.items():
        now = getattr(user, flag)
        if before[flag] != now:
            audit.record(
                turned_on if now else turned_off,
                actor=_actor(request),
                target=user,
                request=request,
            )


@admin.register(User)
class TeamUserAdmin(UserAdmin):  # type: ignore[type-arg]
    list_display = (
        "username",
        "email",
        "is_active",
        "is_staff",
        "may_use_team_token",
        "token_state",
        "last_login",
    )
    list_filter = ("is_active", "is_staff", "may_use_team_token")
    fieldsets = (
        *UserAdmin.fieldsets,  # type: ignore[misc]
        ("Nobox", {"fields": ("may_use_team_token",)}),
    )
    actions = ("deactivate_users", "activate_users")

    @admin.display(description="Nobox token")
    def token_state(self, user: User) -> str:
        record = NoboxToken.objects.filter(user=user).first()
        return f"…{record.last4} ({record.state})" if record else "none"

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        before = User.objects.filter(pk=obj.pk).values(*AUDITED_FLAGS).first() if change else None
        super().save_model(request, obj, form, change)
        audit_user_save(before, obj, request)

    def user_change_password(
        self, request: HttpRequest, id: str, form_url: str = ""
    ) -> HttpResponse:
        response: HttpResponse = super().user_change_password(request, id, form_url)
        if request.method == "POST" and response.status_code == 302:
            audit.record(
                Action.USER_PASSWORD_RESET,
                actor=_actor(request),
                target=User.objects.get(pk=id),
                request=request,
            )
        return response

    @admin.action(description="Deactivate selected users (signs them out everywhere)")
    def deactivate_users(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self._set_active(request, queryset, False)

    @admin.action(description="Reactivate selected users")
    def activate_users(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self._set_active(request, queryset, True)

    def _set_active(self, request: HttpRequest, queryset: QuerySet[User], active: bool) -> None:
        changed = 0
        for user in queryset.exclude(is_active=active):
            if not active and user.pk == request.user.pk:
                messages.error(request, "You cannot deactivate your own account.")
                continue
            before = {flag: getattr(user, flag) for flag in AUDITED_FLAGS}
            user.is_active = active
            user.save(update_fields=["is_active"])  # signals sign a deactivated user out
            audit_user_save(before, user, request)
            changed += 1
        messages.success(request, f"{changed} user(s) {'re' if active else 'de'}activated.")


# --- tokens --------------------------------------------------------------------------------------


class NoboxTokenForm(forms.ModelForm[NoboxToken]):
    new_token = forms.CharField(
        required=False,
        strip=True,
        max_length=500,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        label="New token",
        help_text="Write-only: stored encrypted, never shown again. Leave empty to keep the "
        "current token. Leave 'user' empty to make this the team's shared token.",
    )

    class Meta:
        model = NoboxToken
        fields = ("user", "team_for_everyone", "expires_at")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        new_token = data.get("new_token", "")
        if self.instance.pk is None and not new_token:
            self.add_error("new_token", "Enter the token to store.")
        if new_token and (len(new_token) < 8 or any(ch.isspace() for ch in new_token)):
            self.add_error("new_token", "That does not look like a Nobox token.")
        creating_team = self.instance.pk is None and data.get("user") is None
        if creating_team and NoboxToken.objects.filter(is_team=True).exists():
            self.add_error("user", "A team token exists already: edit it instead, or pick a user.")
        return data


@admin.register(NoboxToken)
class NoboxTokenAdmin(admin.ModelAdmin[NoboxToken]):
    form = NoboxTokenForm
    list_display = (
        "owner",
        "ending",
        "created_at",
        "last_used_at",
        "last_verified_at",
        "verify_result",
        "expires_at",
        "state",
    )
    list_select_related = ("user",)
    search_fields = ("user__username", "last4")
    actions = ("verify_tokens", "revoke_tokens")
    readonly_fields = (
        "ending",
        "state",
        "created_at",
        "updated_at",
        "last_used_at",
        "last_verified_at",
        "verify_result",
    )

    def get_readonly_fields(self, request: HttpRequest, obj: NoboxToken | None = None) -> Any:
        # A token belongs to one person (or the team) for life; move it by setting a new one.
        extra = ("user",) if obj is not None else ()
        return (*extra, *self.readonly_fields)

    @admin.display(description="owner")
    def owner(self, record: NoboxToken) -> str:
        return "team (shared)" if record.is_team else str(record.user)

    @admin.display(description="token")
    def ending(self, record: NoboxToken) -> str:
        return f"…{record.last4}" if record.last4 else ""

    @admin.display(description="last verification")
    def verify_result(self, record: NoboxToken) -> str:
        if record.last_verify_ok is None:
            return "never"
        return "ok" if record.last_verify_ok else f"failed: {record.last_verify_error}"

    def save_model(self, request: HttpRequest, obj: NoboxToken, form: Any, change: bool) -> None:
        new_token = form.cleaned_data.get("new_token")
        if change and "expires_at" in form.changed_data:
            tokens.set_expiry(obj, obj.expires_at, actor=_actor(request), request=request)
        if new_token:
            tokens.set_token(obj, new_token, actor=_actor(request), request=request)
        else:
            obj.save()

    def delete_model(self, request: HttpRequest, obj: NoboxToken) -> None:
        audit.record(
            Action.TOKEN_REMOVED,
            actor=_actor(request),
            target=obj.user,
            request=request,
            detail=f"token …{obj.last4}",
        )
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[NoboxToken]) -> None:
        for record in queryset:
            self.delete_model(request, record)

    @admin.action(description="Verify selected tokens with Nobox (lists the models)")
    def verify_tokens(self, request: HttpRequest, queryset: QuerySet[NoboxToken]) -> None:
        for record in queryset:
            error = _verification_error(record)
            tokens.record_verification(record, error, actor=_actor(request), request=request)
            level = messages.SUCCESS if error is None else messages.WARNING
            messages.add_message(
                request,
                level,
                f"{self.owner(record)} …{record.last4}: {'ok' if error is None else error}",
            )

    @admin.action(description="Revoke selected tokens (sending stops at once)")
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[NoboxToken]) -> None:
        for record in queryset:
            tokens.revoke(record, actor=_actor(request), request=request)
        messages.success(request, f"{queryset.count()} token(s) revoked.")


def _verification_error(record: NoboxToken) -> str | None:
    try:
        secret = tokens.decrypt(record.ciphertext)
    except tokens.TokenUnreadable:
        return "cannot be decrypted with the current keys: please re-enter it"
    try:
        async_to_sync(upstream.models_for)(secret, fresh=True)
    except NoboxError as error:
        return f"{error.code}: {upstream.explain(error)}"
    return None


# --- audit trail ---------------------------------------------------------------------------------


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin[AuditEvent]):
    list_display = ("created_at", "actor_name", "action", "target_name", "detail", "ip_address")
    list_filter = ("action",)
    search_fields = ("actor_name", "target_name", "detail")
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


# --- conversations -------------------------------------------------------------------------------


class MessageInline(admin.TabularInline[Message, Conversation]):
    model = Message
    fields = (
        "seq",
        "role",
        "status",
        "model",
        "token_source",
        "total_tokens",
        "cost",
        "created_at",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin[Conversation]):
    list_display = ("public_id", "owner", "title", "model", "updated_at")
    list_filter = ("model",)
    search_fields = ("title", "owner__username")
    readonly_fields = ("public_id", "owner", "next_seq", "created_at", "updated_at")
    inlines = (MessageInline,)
