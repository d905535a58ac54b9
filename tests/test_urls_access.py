"""Every URL the project serves, tried as every kind of visitor.

The walk starts from the resolver, so a new route (or a newly registered admin model) fails
`test_every_route_is_covered` until someone decides who may use it. Each request comes from a
fresh client, so sign-outs and deletions do not leak between checks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.db.models import Model
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from chat import attachments, sharing, tokens
from chat.models import (
    Attachment,
    AuditEvent,
    Conversation,
    Message,
    NoboxToken,
    ShareLink,
    ShareSettings,
    TeamBudget,
    Usage,
    User,
)

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "owner", "other", "view_staff", "change_staff", "superuser")
LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"


def walk(patterns: list[Any], namespace: str = "") -> Iterator[str]:
    """The name of every route ("?" for unnamed ones), namespaced like `reverse` wants it."""
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from walk(pattern.url_patterns, inner)
        elif isinstance(pattern, URLPattern):
            yield f"{namespace}{pattern.name or '?'}"


def model_perms(*actions: str) -> list[Permission]:
    """The permissions to `actions` on every model registered in the admin."""
    wanted = [
        (m._meta.app_label, f"{action}_{m._meta.model_name}")
        for m in admin.site._registry
        for action in actions
    ]
    perms = list(
        Permission.objects.filter(codename__in=[c for _, c in wanted]).select_related(
            "content_type"
        )
    )
    return [p for p in perms if (p.content_type.app_label, p.codename) in wanted]


@dataclass
class World:
    users: dict[str, User]
    conversation: Conversation
    objects: dict[type[Model], Model]
    share_token: str  # opens a live link to `conversation`

    def client(self, role: str) -> Client:
        client = Client(REMOTE_ADDR="192.0.2.50")
        if role != "anonymous":
            client.force_login(self.users[role])
        return client

    def fresh_conversation(self) -> Conversation:
        return Conversation.objects.create(owner=self.users["owner"], title="throwaway")

    def fresh_deleted_conversation(self) -> Conversation:
        return Conversation.objects.create(
            owner=self.users["owner"], title="deleted", deleted_at=timezone.now()
        )

    def owners_file(self) -> Attachment:
        """A text file sent in the owner's conversation, stored like any upload."""
        message = Message.objects.create(
            conversation=self.conversation, seq=Message.objects.count() + 1, role="user"
        )
        upload = attachments.Upload("notes.txt", b"private notes", attachments.recognise(b"x"))
        [stored] = attachments.save_files([upload])
        return Attachment.objects.create(
            message=message,
            position=0,
            kind="text",
            content_type=upload.kind.content_type,
            name=upload.name,
            size=len(upload.data),
            stored_name=stored,
        )

    def fresh_link(self) -> ShareLink:
        return share(self.conversation).link


def share(conversation: Conversation) -> sharing.NewLink:
    return sharing.create_link(
        conversation.owner,
        conversation,
        kind="live",
        expires_in=None,
        show_owner_name=False,
        show_cost=False,
    )


@pytest.fixture
def world(django_user_model, nobox) -> World:
    make = django_user_model.objects.create_user
    users = {
        "owner": make("alice", "alice@example.com", "alice-password"),
        "other": make("bob", "bob@example.com", "bob-password"),
        "view_staff": make("viewer", "", "viewer-password", is_staff=True),
        "change_staff": make("manager", "", "manager-password", is_staff=True),
        "superuser": django_user_model.objects.create_superuser("boss", "", "boss-password"),
    }
    users["view_staff"].user_permissions.set(model_perms("view"))
    users["change_staff"].user_permissions.set(model_perms("view", "change"))
    make("dora", "", "dora-password", is_active=False)  # someone to reactivate
    tokens.store_token(users["owner"], "sk-alice-walk-0001")
    tokens.store_team_token("sk-team-walk-0002", actor=None)
    conversation = Conversation.objects.create(owner=users["owner"], title="Alice's")
    link = share(conversation)
    objects: dict[type[Model], Model] = {
        ShareLink: link.link,
        ShareSettings: ShareSettings.current(),
        User: users["superuser"],
        NoboxToken: NoboxToken.objects.get(is_team=True),
        AuditEvent: AuditEvent.objects.first(),  # type: ignore[dict-item]
        Conversation: conversation,
        TeamBudget: TeamBudget.current(),
        Usage: Usage.objects.create(user=users["owner"], user_name="alice", model="m"),
        Group: Group.objects.create(name="helpers"),
        AccessAttempt: AccessAttempt.objects.create(
            username="mallory", ip_address="192.0.2.66", failures_since_start=3
        ),
        AccessLog: AccessLog.objects.create(username="alice", ip_address="192.0.2.67"),
        AccessFailureLog: AccessFailureLog.objects.create(
            username="mallory", ip_address="192.0.2.66"
        ),
    }
    return World(users, conversation, objects, link.token)


# --- expected answers -----------------------------------------------------------------------------

# Status per role, in ROLES order. "login" means a redirect to the site's sign-in page,
# "admin_login" to the admin's; "ok" a form answered (200, re-shown) or saved (302); a number is
# the status itself.
Expect = tuple[Any, Any, Any, Any, Any, Any]
SIGNED_IN_ONLY: Expect = ("login", 200, 200, 200, 200, 200)
STAFF_ONLY: Expect = ("admin_login", "admin_login", "admin_login", 200, 200, 200)
PRIVATE_TO_OWNER: Expect = ("login", 200, 404, 404, 404, 404)
NOT_A_FORM: Expect = ("login", 405, 405, 405, 405, 405)


@dataclass
class Check:
    method: str
    url: Callable[[World], str]
    expect: Expect
    data: dict[str, Any] | None = None


def app_index(app: str) -> Callable[[World], str]:
    return lambda w: f"/admin/{app}/"


def fresh_conversation_url(action: str) -> Callable[[World], str]:
    return lambda w: f"/api/conversations/{w.fresh_conversation().public_id}/{action}"


def conversation_url(action: str) -> Callable[[World], str]:
    return lambda w: f"/api/conversations/{w.conversation.public_id}/{action}"


SITE_CHECKS: dict[str, list[Check]] = {
    "chat:home": [Check("get", lambda w: "/", SIGNED_IN_ONLY)],
    "chat:conversation": [
        Check("get", lambda w: f"/c/{w.conversation.public_id}/", PRIVATE_TO_OWNER)
    ],
    # Files are the owner's alone: staff see no one's files through the site.
    "chat:attachment": [
        Check("get", lambda w: f"/files/{w.owners_file().public_id}", PRIVATE_TO_OWNER),
        Check("post", lambda w: f"/files/{w.owners_file().public_id}", NOT_A_FORM),
    ],
    "chat:messages": [
        Check("get", lambda w: f"/c/{w.conversation.public_id}/messages?before=5", PRIVATE_TO_OWNER)
    ],
    "chat:export_json": [
        Check("get", lambda w: f"/c/{w.conversation.public_id}/export.json", PRIVATE_TO_OWNER)
    ],
    "chat:export_markdown": [
        Check("get", lambda w: f"/c/{w.conversation.public_id}/export.md", PRIVATE_TO_OWNER)
    ],
    # Any signed-in person imports into their own account; a form post is no export file.
    "chat:import": [
        Check("post", lambda w: "/import", ("login", 400, 400, 400, 400, 400), {"a": "b"}),
        Check("get", lambda w: "/import", NOT_A_FORM),
    ],
    "chat:rename": [
        Check(
            "post",
            lambda w: f"/c/{w.fresh_conversation().public_id}/rename",
            ("login", 302, 404, 404, 404, 404),
            {"title": "renamed"},
        ),
        Check(
            "get",
            lambda w: f"/c/{w.conversation.public_id}/rename",
            ("login", 405, 405, 405, 405, 405),
        ),
    ],
    "chat:delete": [
        Check(
            "post",
            lambda w: f"/c/{w.fresh_conversation().public_id}/delete",
            ("login", 302, 404, 404, 404, 404),
        ),
        Check(
            "get",
            lambda w: f"/c/{w.conversation.public_id}/delete",
            ("login", 405, 405, 405, 405, 405),
        ),
    ],
    # The conversation list's JSON endpoints: a JSON 401 signed out, 404 for anyone's but the
    # owner's conversation, POST only.
    "chat:search": [
        Check("get", lambda w: "/api/conversations?q=Alice", (401, 200, 200, 200, 200, 200)),
        Check("post", lambda w: "/api/conversations", (405,) * 6),
    ],
    **{
        f"chat:{name}": [
            Check("post", fresh_conversation_url(action), (401, 200, 404, 404, 404, 404), data),
            Check("get", conversation_url(action), (405,) * 6),
        ]
        for name, action, data in [
            ("api_rename", "rename", {"title": "renamed"}),
            ("pin", "pin", {"pinned": "true"}),
            ("archive", "archive", {"archived": "true"}),
            ("api_delete", "delete", {}),
        ]
    },
    "chat:restore": [
        Check(
            "post",
            lambda w: f"/api/conversations/{w.fresh_deleted_conversation().public_id}/restore",
            (401, 200, 404, 404, 404, 404),
        ),
        Check(
            "get",
            lambda w: f"/api/conversations/{w.conversation.public_id}/restore",
            (405,) * 6,
        ),
    ],
    "chat:settings": [Check("get", lambda w: "/settings/", SIGNED_IN_ONLY)],
    "chat:share_create": [
        Check(
            "get",
            lambda w: f"/c/{w.conversation.public_id}/share",
            ("login", 200, 404, 404, 404, 404),
        ),
        Check(
            "post",
            lambda w: f"/c/{w.conversation.public_id}/share",
            ("login", 200, 404, 404, 404, 404),
            {"kind": "snapshot"},
        ),
    ],
    "chat:share_links": [Check("get", lambda w: "/shares/", SIGNED_IN_ONLY)],
    "chat:share_revoke": [
        Check(
            "post",
            lambda w: f"/shares/{w.fresh_link().public_id}/revoke",
            ("login", 302, 404, 404, 404, 404),
        ),
        Check(
            "get",
            lambda w: f"/shares/{w.fresh_link().public_id}/revoke",
            ("login", 405, 405, 405, 405, 405),
        ),
    ],
    # Links are for signed-in members only by default (tests/test_sharing.py tries both).
    "chat:shared": [
        Check("get", lambda w: f"/s/{w.share_token}", SIGNED_IN_ONLY),
        Check("post", lambda w: f"/s/{w.share_token}", (405,) * 6),
    ],
    # A file of a shared message: to whoever may open the link (members only by default).
    "chat:shared_file": [
        Check(
            "get", lambda w: f"/s/{w.share_token}/files/{w.owners_file().public_id}", SIGNED_IN_ONLY
        ),
        Check("post", lambda w: f"/s/{w.share_token}/files/x", (405,) * 6),
    ],
    # Continuing copies into the visitor's own account (the owner's too).
    "chat:shared_continue": [
        Check("post", lambda w: f"/s/{w.share_token}/continue", ("login",) + (302,) * 5),
        Check("get", lambda w: f"/s/{w.share_token}/continue", (405,) * 6),
    ],
    # The owner has a token; nobody else has one or may use the team's.
    "chat:models": [Check("get", lambda w: "/api/models", (401, 200, 409, 409, 409, 409))],
    "chat:conversation_usage": [
        Check(
            "get",
            lambda w: f"/api/c/{w.conversation.public_id}/usage",
            ("login", 200, 404, 404, 404, 404),
        ),
        Check(
            "post",
            lambda w: f"/api/c/{w.conversation.public_id}/usage",
            ("login", 405, 405, 405, 405, 405),
        ),
    ],
    "login": [Check("get", lambda w: LOGIN, (200,) * 6)],
    "logout": [
        Check("post", lambda w: "/accounts/logout/", ("login",) * 6),
        Check("get", lambda w: "/accounts/logout/", (405,) * 6),
    ],
    "password_change": [Check("get", lambda w: "/accounts/password_change/", SIGNED_IN_ONLY)],
    "password_change_done": [
        Check("get", lambda w: "/accounts/password_change/done/", SIGNED_IN_ONLY)
    ],
    "admin:index": [Check("get", lambda w: "/admin/", STAFF_ONLY)],
    "admin:chat_usage_dashboard": [
        Check("get", lambda w: "/admin/chat/usage/dashboard/", STAFF_ONLY)
    ],
    "admin:chat_usage_export": [Check("get", lambda w: "/admin/chat/usage/export.csv", STAFF_ONLY)],
    "admin:login": [Check("get", lambda w: ADMIN_LOGIN, (200, 200, 200, 302, 302, 302))],
    # Signing out needs no permission: visitors who are not staff are sent to the admin index
    # (which asks them to sign in), staff to the site's sign-in page.
    "admin:logout": [
        Check("post", lambda w: "/admin/logout/", (302, 302, 302, "login", "login", "login"))
    ],
    "admin:password_change": [Check("get", lambda w: "/admin/password_change/", STAFF_ONLY)],
    "admin:password_change_done": [
        Check("get", lambda w: "/admin/password_change/done/", STAFF_ONLY)
    ],
    "admin:jsi18n": [Check("get", lambda w: "/admin/jsi18n/", STAFF_ONLY)],
    # Without the parameters a select widget sends, the lookup is refused.
    "admin:autocomplete": [
        Check("get", lambda w: "/admin/autocomplete/", ("admin_login",) * 3 + (403, 403, 403))
    ],
    # No model here has a public page to jump to.
    "admin:view_on_site": [
        Check(
            "get",
            lambda w: f"/admin/r/{content_type(Conversation)}/{w.conversation.pk}/",
            ("admin_login",) * 3 + (404, 404, 404),
        )
    ],
    "admin:app_list": [
        Check("get", app_index(app), STAFF_ONLY) for app in ("chat", "auth", "axes")
    ],
    # Unnamed: the admin's catch-all, and each model's /<id>/ redirect to its change page.
    "admin:?": [
        Check("get", lambda w: "/admin/no-such-page/", ("admin_login",) * 3 + (404, 404, 404)),
        Check(
            "get",
            lambda w: f"/admin/chat/conversation/{w.conversation.pk}/",
            ("admin_login",) * 3 + (302, 302, 302),
        ),
    ],
    # Setting a password is changing the user: a superuser's is for superusers only.
    "admin:auth_user_password_change": [
        Check(
            "get",
            lambda w: f"/admin/chat/user/{w.users['superuser'].pk}/password/",
            ("admin_login",) * 3 + (403, 403, 200),
        ),
        Check(
            "get",
            lambda w: f"/admin/chat/user/{w.users['other'].pk}/password/",
            ("admin_login",) * 3 + (403, 200, 200),
        ),
    ],
}


def content_type(model: type[Model]) -> int:
    from django.contrib.contenttypes.models import ContentType

    return ContentType.objects.get_for_model(model).pk


# Admin models nobody adds by hand: the audit trail, axes' records of sign-ins, share links
# (their owners make them), the one row of sharing settings, the team budget's one row (made on
# first use) and the usage records.
NO_ADD = {
    AuditEvent,
    AccessAttempt,
    AccessLog,
    AccessFailureLog,
    ShareLink,
    ShareSettings,
    TeamBudget,
    Usage,
}
# The audit trail and the usage records cannot be changed or deleted by anyone. Axes' records
# show every field read-only (saving changes nothing) and superusers may delete them to lift a
# lockout.
READ_ONLY = {AuditEvent, Usage}
# Nor can the one-row settings be deleted (emptying the budget's limit is how to lift it).
NO_DELETE = {*READ_ONLY, ShareSettings, TeamBudget}


def model_checks(model: type[Model]) -> dict[str, list[Check]]:
    """Changelist, add, change (GET and POST), delete and history for one admin model."""
    prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}"
    add_ok = 403 if model in NO_ADD else 200
    delete_ok = 403 if model in NO_DELETE else 200
    change_ok = 403 if model in READ_ONLY else "ok"
    # Only superusers may change a superuser, the User row under test.
    staff_change = 403 if model in READ_ONLY or model is User else "ok"
    denied = ("admin_login",) * 3

    def url(suffix: str) -> Callable[[World], str]:
        if suffix in ("changelist", "add"):
            return lambda w: reverse(f"{prefix}_{suffix}")
        return lambda w: reverse(f"{prefix}_{suffix}", args=[w.objects[model].pk])

    return {
        f"{prefix}_changelist": [Check("get", url("changelist"), STAFF_ONLY)],
        f"{prefix}_add": [Check("get", url("add"), (*denied, 403, 403, add_ok))],
        f"{prefix}_change": [
            Check("get", url("change"), STAFF_ONLY),
            Check("post", url("change"), (*denied, 403, staff_change, change_ok), {}),
        ],
        f"{prefix}_delete": [Check("get", url("delete"), (*denied, 403, 403, delete_ok))],
        f"{prefix}_history": [Check("get", url("history"), STAFF_ONLY)],
    }


def all_checks() -> dict[str, list[Check]]:
    checks = dict(SITE_CHECKS)
    for model in admin.site._registry:
        checks.update(model_checks(model))
    return checks


def outcome(response: Any) -> Any:
    if response.status_code == 302:
        location = response["Location"]
        if location.startswith(LOGIN):
            return "login"
        if location.startswith(ADMIN_LOGIN):
            return "admin_login"
    return response.status_code


# --- the walk -------------------------------------------------------------------------------------


def test_every_route_is_covered():
    routes = set(walk(get_resolver().url_patterns))
    assert routes == set(all_checks())


def test_every_route_answers_each_role_as_expected(world):
    wrong = []
    for name, checks in all_checks().items():
        for check in checks:
            for role, expected in zip(ROLES, check.expect, strict=True):
                url = check.url(world)
                client = world.client(role)
                send = getattr(client, check.method)
                got = outcome(send(url, check.data) if check.method == "post" else send(url))
                if got != expected and not (expected == "ok" and got in (200, 302)):
                    wrong.append(
                        f"{role} {check.method.upper()} {url} ({name}): {got}, not {expected}"
                    )
    assert wrong == [], "\n".join(wrong)


# --- admin actions -------------------------------------------------------------------------------


def perms_of(role: str, world: World) -> set[str]:
    return world.users[role].get_all_permissions() if role != "anonymous" else set()


def snapshot() -> list[Any]:
    """Everything an admin action could change: the rows of every admin model and the trail."""
    models: list[type[Model]] = [*admin.site._registry, AuditEvent]
    return [list(m._default_manager.order_by("pk").values()) for m in models]


def test_every_admin_action_declares_its_permission():
    undeclared = [
        f"{type(model_admin).__name__}.{name}"
        for model_admin in admin.site._registry.values()
        for name, (function, _, _) in _all_actions(model_admin).items()
        if not getattr(function, "allowed_permissions", None)
    ]
    assert undeclared == []


def _all_actions(model_admin: admin.ModelAdmin[Any]) -> dict[str, Any]:
    """Every action of a ModelAdmin, whoever asks (a superuser request sees them all)."""
    from django.test import RequestFactory

    request = RequestFactory().get("/")
    request.user = User(is_superuser=True, is_staff=True, is_active=True)
    return model_admin.get_actions(request)


def test_every_admin_action_is_refused_without_its_permission(world):
    refused_runs = 0
    for model, model_admin in admin.site._registry.items():
        meta = model._meta
        for name, (function, _, _) in _all_actions(model_admin).items():
            needed = {
                f"{meta.app_label}.{codename}_{meta.model_name}"
                for codename in function.allowed_permissions
            }
            for role in ROLES[:-1]:  # the superuser holds every permission
                if needed <= perms_of(role, world):
                    continue
                client = world.client(role)  # signing in writes axes' access log
                before = snapshot()
                every_pk = list(model._default_manager.values_list("pk", flat=True))
                response = client.post(
                    reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"),
                    {
                        "action": name,
                        "_selected_action": every_pk,
                        "post": "yes",  # what delete_selected's confirmation page sends
                    },
                    follow=True,
                )
                assert response.status_code in (200, 403), (role, name)
                assert snapshot() == before, f"{role} ran {meta.label}.{name}"
                refused_runs += 1
    assert refused_runs >= 5 * len(admin.site._registry)


@pytest.mark.parametrize(
    ("model", "action", "role"),
    [
        (User, "activate_users", "change_staff"),
        (NoboxToken, "revoke_tokens", "change_staff"),
        (NoboxToken, "verify_tokens", "change_staff"),
        (ShareLink, "revoke_links", "change_staff"),
        (Conversation, "delete_selected", "superuser"),
        (AccessAttempt, "delete_selected", "superuser"),
    ],
)
def test_an_admin_action_runs_with_its_permission(world, model, action, role):
    # The other side of the refusal test: the same post does change things when allowed.
    client = world.client(role)
    before = snapshot()
    meta = model._meta
    client.post(
        reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"),
        {
            "action": action,
            "_selected_action": list(model.objects.values_list("pk", flat=True)),
            "post": "yes",
        },
    )
    assert snapshot() != before
