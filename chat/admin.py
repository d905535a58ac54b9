"""The Django admin, shaped so a team admin needs no shell: users, tokens, audit trail.

Tokens are write-only here: a form field takes a new one, lists show the last four characters,
and every change goes through chat.tokens so it is encrypted and audited.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from asgiref.sync import async_to_sync
from axes.admin import AccessAttemptAdmin
from axes.models import AccessAttempt
from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, ForeignKey, Q, QuerySet
from django.forms import ModelChoiceField
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables

from chat import audit, budgets, tokens, upstream, usage_dashboard, usage_report
from chat.forms import token_or_error
from chat.models import (
    AuditEvent,
    Conversation,
    Message,
    NoboxToken,
    TeamBudget,
    Usage,
    User,
)
from chat.nobox import NoboxError
from chat.sign_out import deactivate_user, sign_out_everywhere
from chat.views import explain

Action = AuditEvent.Action

# The navigation sidebar repeats the index on every page and takes a quarter of a 1280 px
# screen from the lists beside it; the breadcrumbs lead back to the index.
admin.site.enable_nav_sidebar = False


def _actor(request: HttpRequest) -> User | None:
    return request.user if isinstance(request.user, User) else None


def _is_superuser(request: HttpRequest) -> bool:
    return bool(getattr(request.user, "is_superuser", False))


# --- who may manage whom -------------------------------------------------------------------------

# Only superusers grant these: anyone who could would be able to give themself everything.
PRIVILEGE_FIELDS = ("is_superuser", "groups", "user_permissions")


def permissions_of(user: User) -> set[str]:
    """Every permission `user` holds directly or through a group, active or not: an inactive
    account keeps its powers for the day it is reactivated."""
    rows = (
        Permission.objects.filter(Q(user=user) | Q(group__user=user))
        .values_list("content_type__app_label", "codename")
        .distinct()
    )
    return {f"{app}.{codename}" for app, codename in rows}


def may_manage(actor: object, target: User) -> bool:
    """Whether `actor` may change, deactivate or reset the password of `target`.

    Superusers may manage anyone. Others may manage only non-superusers with no permission the
    actor lacks: taking over a more powerful account (a new password, reactivation) would be
    the same as being granted its powers.
    """
    if getattr(actor, "is_superuser", False):
        return True
    if not isinstance(actor, User) or target.is_superuser:
        return False
    return permissions_of(target) <= permissions_of(actor)


# --- users ---------------------------------------------------------------------------------------

# Flags whose change is audited: field -> (event when turned on, event when turned off).
AUDITED_FLAGS = {
    "is_active": (Action.USER_REACTIVATED, Action.USER_DEACTIVATED),
    "is_staff": (Action.USER_MADE_STAFF, Action.USER_STAFF_REMOVED),
    "is_superuser": (Action.USER_MADE_SUPERUSER, Action.USER_SUPERUSER_REMOVED),
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


def privileges_of(user: User) -> dict[str, set[str]]:
    """The user's groups and direct permissions, by name, to audit what a save changed."""
    return {
        Action.USER_GROUPS_CHANGED: set(user.groups.values_list("name", flat=True)),
        Action.USER_PERMISSIONS_CHANGED: {
            f"{app}.{codename}"
            for app, codename in user.user_permissions.values_list(
                "content_type__app_label", "codename"
            )
        },
    }


def audit_privileges(before: dict[str, set[str]], user: User, request: HttpRequest) -> None:
    for action, now in privileges_of(user).items():
        added, removed = sorted(now - before[action]), sorted(before[action] - now)
        if not (added or removed):
            continue
        detail = "; ".join(
            f"{label}: {', '.join(names)}"
            for label, names in (("added", added), ("removed", removed))
            if names
        )
        audit.record(action, actor=_actor(request), target=user, request=request, detail=detail)


@admin.register(User)
class TeamUserAdmin(UserAdmin):  # type: ignore[type-arg]
    list_display = (
        "username",
        "name_and_email",
        "is_active",
        "staff",
        "own_token",
        "team_token",
        "this_month",
        "last_login",
    )
    # The own token comes with its user (a reverse one-to-one join): no query per row.
    list_select_related = ("nobox_token",)
    list_filter = ("is_active", "is_staff", "may_use_team_token")
    # The form: what a team chat's admin looks for first (who may chat on which token, at what
    # cost this month) before Django's groups and permissions, which fold away.
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        (gettext_lazy("Personal info"), {"fields": ("first_name", "last_name", "email")}),
        (
            gettext_lazy("Nobox access"),
            {"fields": ("may_use_team_token", "token_summary", "monthly_limit", "this_month")},
        ),
        (gettext_lazy("Status"), {"fields": ("is_active", "is_staff", "is_superuser")}),
        (
            gettext_lazy("Groups and permissions"),
            {"classes": ("collapse",), "fields": ("groups", "user_permissions")},
        ),
        (gettext_lazy("Important dates"), {"fields": ("last_login", "date_joined")}),
    )
    # The dates are facts, not settings; Django's split date/time inputs for them also lack
    # labels (axe: critical).
    readonly_fields = ("token_summary", "this_month", "last_login", "date_joined")
    actions = ("deactivate_users", "activate_users")

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        team_open = NoboxToken.objects.filter(is_team=True, team_for_everyone=True)
        users = budgets.with_month(super().get_queryset(request))
        return users.annotate(team_token_for_everyone=Exists(team_open))

    @admin.display(description=gettext_lazy("Name / email"), ordering="last_name")
    def name_and_email(self, user: User) -> str:
        # A long address wraps before its "@" rather than anywhere (admin.css).
        mailbox, at, domain = user.email.partition("@")
        return format_html(
            '<span class="user-name">{}</span> <span class="user-email">{}<wbr>{}{}</span>',
            user.get_full_name(),
            mailbox,
            at,
            domain,
        )

    @admin.display(description=gettext_lazy("Staff"), boolean=True, ordering="is_staff")
    def staff(self, user: User) -> bool:
        return user.is_staff

    @admin.display(description=gettext_lazy("Own token"))
    def own_token(self, user: User) -> str:
        record = _own_token(user)
        return f"…{record.last4} {record.state}" if record else _("none")

    @admin.display(
        description=gettext_lazy("Team token"), boolean=True, ordering="may_use_team_token"
    )
    def team_token(self, user: User) -> bool:
        """Whether the user may chat on the team token (when they have no usable own one)."""
        return user.may_use_team_token or bool(getattr(user, "team_token_for_everyone", False))

    @admin.display(description=gettext_lazy("This month"), ordering="month_spent")
    def this_month(self, user: User) -> str:
        budget = budgets.from_annotations(user)
        spent = usage_report.usd(budget.spent)
        if budget.limit is None:
            return _("%(spent)s (no limit)") % {"spent": spent}
        return _("%(spent)s of %(limit)s (%(state)s)") % {
            "spent": spent,
            "limit": f"${budget.limit:.2f}",
            "state": budget.state,
        }

    @admin.display(description=gettext_lazy("Nobox token"))
    def token_summary(self, user: User) -> str:
        """The user's own token and what their sends use now, for the change form."""
        record = _own_token(user)
        rows = [(_("Own token"), _token_text(record))]
        if record is not None:
            rows += [
                (_("Last verified"), _verified_text(record)),
                (_("Set by"), _set_by_text(user)),
            ]
        rows.append((_("Sends use"), _sends_use(user)))
        items = format_html_join("", "<li><strong>{}:</strong> {}</li>", rows)
        link = (
            reverse("admin:chat_noboxtoken_change", args=[record.pk])
            if record
            else reverse("admin:chat_noboxtoken_add") + f"?user={user.pk}"
        )
        action = _("Verify, revoke or replace it") if record else _("Set a token for this user")
        return format_html(
            '<ul class="token-summary">{}</ul><a href="{}">{}</a>', items, link, action
        )

    def has_change_permission(self, request: HttpRequest, obj: User | None = None) -> bool:
        # Also guards the password form, which asks this with the user whose password it sets.
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or may_manage(request.user, obj))

    def has_delete_permission(self, request: HttpRequest, obj: User | None = None) -> bool:
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or may_manage(request.user, obj))

    def get_readonly_fields(self, request: HttpRequest, obj: User | None = None) -> Any:
        fields = tuple(super().get_readonly_fields(request, obj))
        return fields if _is_superuser(request) else (*fields, *PRIVILEGE_FIELDS)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        # Bulk delete checks the model permission only; superusers stay out of others' reach.
        super().delete_queryset(request, self._manageable(request, queryset))

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        fields = (*AUDITED_FLAGS, "monthly_limit")
        before = User.objects.filter(pk=obj.pk).values(*fields).first() if change else None
        super().save_model(request, obj, form, change)
        audit_user_save(before, obj, request)
        if before is not None and before["monthly_limit"] != obj.monthly_limit:
            audit.record(
                Action.USER_LIMIT_CHANGED,
                actor=_actor(request),
                target=obj,
                request=request,
                detail=f"monthly limit: {_limit_text(before['monthly_limit'])} -> "
                f"{_limit_text(obj.monthly_limit)}",
            )
        if before and before["is_active"] and not obj.is_active:
            sign_out_everywhere(obj)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        before = privileges_of(form.instance)
        super().save_related(request, form, formsets, change)
        audit_privileges(before, form.instance, request)

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

    @admin.action(
        description=gettext_lazy("Deactivate selected users (signs them out everywhere)"),
        permissions=["change"],
    )
    def deactivate_users(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self._set_active(request, queryset, False)

    @admin.action(description=gettext_lazy("Reactivate selected users"), permissions=["change"])
    def activate_users(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self._set_active(request, queryset, True)

    def _manageable(self, request: HttpRequest, queryset: QuerySet[User]) -> QuerySet[User]:
        """The selected users `request.user` may manage; says so when some are left out."""
        allowed = [user.pk for user in queryset if may_manage(request.user, user)]
        skipped = queryset.count() - len(allowed)
        if skipped:
            messages.error(
                request,
                _(
                    "%(count)d selected user(s) left unchanged: only superusers may change "
                    "superusers or accounts with permissions you do not have."
                )
                % {"count": skipped},
            )
        return queryset.filter(pk__in=allowed)

    def _set_active(self, request: HttpRequest, queryset: QuerySet[User], active: bool) -> None:
        changed = 0
        for user in self._manageable(request, queryset).exclude(is_active=active):
            if not active and user.pk == request.user.pk:
                messages.error(request, _("You cannot deactivate your own account."))
                continue
            if active:
                user.is_active = True
                user.save(update_fields=["is_active"])
                audit.record(
                    Action.USER_REACTIVATED, actor=_actor(request), target=user, request=request
                )
            else:
                deactivate_user(user, _actor(request), request)
            changed += 1
        done = (
            _("%(count)d user(s) reactivated.") if active else _("%(count)d user(s) deactivated.")
        )
        messages.success(request, done % {"count": changed})


def _own_token(user: User) -> NoboxToken | None:
    try:
        return user.nobox_token
    except NoboxToken.DoesNotExist:
        return None


def _token_text(record: NoboxToken | None) -> str:
    return f"…{record.last4} ({record.state})" if record else _("none set")


def _when(moment: datetime) -> str:
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M}"


def _verified_text(record: NoboxToken) -> str:
    if record.last_verified_at is None:
        return _("never")
    outcome = (
        _("ok")
        if record.last_verify_ok
        else _("failed: %(error)s") % {"error": record.last_verify_error}
    )
    return f"{_when(record.last_verified_at)} ({outcome})"


def _set_by_text(user: User) -> str:
    """Who saved the current token and when, from the audit trail (a person, an admin or a
    command)."""
    event = AuditEvent.objects.filter(
        target_user=user, action__in=(Action.TOKEN_SET, Action.TOKEN_REPLACED)
    ).first()
    if event is None:
        return _("unknown")
    return f"{event.actor_name or _('unknown')}, {_when(event.created_at)}"


def _sends_use(user: User) -> str:
    try:
        source = tokens.resolve(user).source
    except tokens.TokenProblem as problem:
        return _("nothing; they are told: %(message)s") % {"message": problem.message}
    return _("their own token") if source == "own" else _("the team token")


def _limit_text(limit: Decimal | None) -> str:
    # Written into the audit trail, which every admin reads: English, like its other details.
    return "team default" if limit is None else f"${limit:.2f}"


@admin.register(TeamBudget)
class TeamBudgetAdmin(admin.ModelAdmin[TeamBudget]):
    """One row: the monthly limit of everyone without one of their own."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and not TeamBudget.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: TeamBudget, form: Any, change: bool) -> None:
        before = (
            TeamBudget.objects.filter(pk=obj.pk)
            .values_list("default_monthly_limit", flat=True)
            .first()
        )
        super().save_model(request, obj, form, change)
        if before != obj.default_monthly_limit:
            text = (
                "no limit"
                if obj.default_monthly_limit is None
                else (f"${obj.default_monthly_limit:.2f}")
            )
            audit.record(
                Action.TEAM_BUDGET_CHANGED,
                actor=_actor(request),
                request=request,
                detail=f"team default monthly limit: {text}",
            )


# --- usage ---------------------------------------------------------------------------------------


@admin.register(Usage)
class UsageAdmin(admin.ModelAdmin[Usage]):
    """The raw usage records, read-only, and the dashboard and CSV export built on them."""

    list_display = (
        "finished_at",
        "user_name",
        "model",
        "token_source",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "estimated",
        "cost_text",
        "status",
    )
    list_filter = ("token_source", "estimated", "status", "model")
    search_fields = ("user_name", "model")
    date_hierarchy = "finished_at"
    change_list_template = "admin/chat/usage/change_list.html"

    @admin.display(description=gettext_lazy("Cost"), ordering="cost")
    def cost_text(self, record: Usage) -> str:
        return _("price unknown") if record.cost is None else usage_report.usd(record.cost)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path("dashboard/", wrap(self.dashboard_view), name="chat_usage_dashboard"),
            path("export.csv", wrap(self.export_view), name="chat_usage_export"),
            *super().get_urls(),
        ]

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        self._may_view(request)
        form = usage_dashboard.RangeForm(request.GET or None)
        return TemplateResponse(
            request,
            "admin/chat/usage/dashboard.html",
            {
                **self.admin_site.each_context(request),
                "title": _("Usage dashboard"),
                "opts": self.model._meta,
                **usage_dashboard.context(form),
            },
        )

    def export_view(self, request: HttpRequest) -> StreamingHttpResponse:
        self._may_view(request)
        span = usage_dashboard.RangeForm(request.GET or None).range()
        response = StreamingHttpResponse(
            usage_report.csv_rows(span.records()), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = (
            f'attachment; filename="usage-{span.start.isoformat()}-{span.end.isoformat()}.csv"'
        )
        return response

    def _may_view(self, request: HttpRequest) -> None:
        if not self.has_view_permission(request):
            raise PermissionDenied


# --- tokens --------------------------------------------------------------------------------------


class NoboxTokenForm(forms.ModelForm[NoboxToken]):
    new_token = forms.CharField(
        required=False,
        strip=True,
        max_length=tokens.MAX_TOKEN_LENGTH,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        label=gettext_lazy("New token"),
        help_text=gettext_lazy(
            "Write-only: stored encrypted, never shown again. Leave empty to keep the current "
            "token. Leave 'user' empty to make this the team's shared token."
        ),
    )

    class Meta:
        model = NoboxToken
        fields = ("user", "team_for_everyone", "expires_at")

    @sensitive_variables("new_token")
    def clean_new_token(self) -> str:
        new_token: str = self.cleaned_data.get("new_token", "")
        return token_or_error(new_token) if new_token else ""

    @sensitive_variables("data", "new_token")
    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        new_token = data.get("new_token", "")
        adding = self.instance._state.adding
        if adding and not new_token and "new_token" not in self.errors:
            self.add_error("new_token", _("Enter the token to store."))
        creating_team = adding and data.get("user") is None
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

    @method_decorator(sensitive_post_parameters("new_token"))
    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        return super().changeform_view(request, object_id, form_url, extra_context)

    def has_change_permission(self, request: HttpRequest, obj: NoboxToken | None = None) -> bool:
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or _may_touch(request, obj))

    def has_delete_permission(self, request: HttpRequest, obj: NoboxToken | None = None) -> bool:
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or _may_touch(request, obj))

    def formfield_for_foreignkey(
        self, db_field: ForeignKey[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField[Any] | None:
        # Setting a superuser's token is changing a superuser: superusers only.
        if db_field.name == "user" and not _is_superuser(request):
            kwargs["queryset"] = User.objects.filter(is_superuser=False)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: NoboxToken | None = None) -> Any:
        # A token belongs to one person (or the team) for life; move it by setting a new one.
        extra = ("user",) if obj is not None else ()
        return (*extra, *self.readonly_fields)

    @admin.display(description=gettext_lazy("owner"))
    def owner(self, record: NoboxToken) -> str:
        return "team (shared)" if record.is_team else str(record.user)

    @admin.display(description=gettext_lazy("token"))
    def ending(self, record: NoboxToken) -> str:
        return f"…{record.last4}" if record.last4 else ""

    @admin.display(description=gettext_lazy("last verification"))
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
            if _may_touch(request, record):
                self.delete_model(request, record)

    @admin.action(
        description=gettext_lazy("Verify selected tokens with Nobox (lists the models)"),
        permissions=["change"],
    )
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

    @admin.action(
        description=gettext_lazy("Revoke selected tokens (sending stops at once)"),
        permissions=["change"],
    )
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[NoboxToken]) -> None:
        revoked = 0
        for record in queryset.select_related("user"):
            if _may_touch(request, record):
                tokens.revoke(record, actor=_actor(request), request=request)
                revoked += 1
        messages.success(request, _("%(count)d token(s) revoked.") % {"count": revoked})
        if revoked < queryset.count():
            messages.error(
                request,
                _(
                    "Only superusers may revoke the token of a superuser (or of an account "
                    "with permissions you do not have)."
                ),
            )


def _may_touch(request: HttpRequest, record: NoboxToken) -> bool:
    """A superuser's own token is part of that superuser: only superusers change it."""
    return record.user is None or may_manage(request.user, record.user)


@sensitive_variables("secret")
def _verification_error(record: NoboxToken) -> str | None:
    try:
        secret = tokens.decrypt(record.ciphertext)
    except tokens.TokenUnreadable:
        return "cannot be decrypted with the current keys: please re-enter it"
    try:
        async_to_sync(upstream.models_for)(secret, fresh=True)
    except NoboxError as error:
        return f"{error.code}: {explain(error)}"
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


class ModelFilter(admin.SimpleListFilter):
    """By model, with a name for conversations that have none yet (a first turn refused before
    its model was saved): Django's own filter would show that choice as an empty link, which
    neither a reader nor a screen reader can tell apart."""

    title = gettext_lazy("model")
    parameter_name = "model"
    NONE = "__none__"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Conversation]
    ) -> list[tuple[str, str]]:
        models = Conversation.objects.order_by("model").values_list("model", flat=True).distinct()
        return [(name or self.NONE, name or _("(none yet)")) for name in models]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[Conversation]
    ) -> QuerySet[Conversation]:
        value = self.value()
        if value is None:
            return queryset
        return queryset.filter(model="" if value == self.NONE else value)


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin[Conversation]):
    list_display = ("public_id", "owner", "title", "model", "updated_at")
    list_filter = (ModelFilter,)
    search_fields = ("title", "owner__username")
    readonly_fields = ("public_id", "owner", "next_seq", "created_at", "updated_at")
    inlines = (MessageInline,)


# --- sign-in lockouts (django-axes) --------------------------------------------------------------


class LockoutAdmin(AccessAttemptAdmin):  # type: ignore[misc]
    """Axes' own admin, with its clean-up action behind the delete permission: it erases the
    record of failed sign-ins, so a view-only admin must not be able to run it."""

    @admin.action(description=gettext_lazy("Clean up expired attempts"), permissions=["delete"])
    def cleanup_expired_attempts(
        self, request: HttpRequest, queryset: QuerySet[AccessAttempt]
    ) -> None:
        super().cleanup_expired_attempts(request, queryset)


admin.site.unregister(AccessAttempt)
admin.site.register(AccessAttempt, LockoutAdmin)


from chat import share_admin  # noqa: E402, F401  (registers the shared links' admin)
