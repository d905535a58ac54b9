"""The admin side: users, tokens (write-only, verify, revoke, expiry, team token), audit trail."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chat import tokens
from chat.models import AuditEvent, Conversation, NoboxToken, Usage, User
from tests.conftest import stored_token

pytestmark = pytest.mark.django_db

SECRET = "sk-admin-set-token-7777"


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action))


def token_form(**fields: object) -> dict[str, object]:
    return {"new_token": "", "expires_at_0": "", "expires_at_1": "", **fields}


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("boss", "boss@example.com", "boss-pw-123")


@pytest.fixture
def as_admin(admin_user):
    client = Client(REMOTE_ADDR="203.0.113.7")
    client.force_login(admin_user)
    return client


def test_non_staff_users_get_nothing_from_the_admin(client, alice):
    client.force_login(alice)
    for url in [
        "/admin/",
        "/admin/chat/noboxtoken/",
        "/admin/chat/auditevent/",
        "/admin/chat/user/",
        "/admin/chat/conversation/",
    ]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/admin/login/")


def test_an_admin_sets_a_users_token_write_only(as_admin, admin_user, bob):
    response = as_admin.post(
        "/admin/chat/noboxtoken/add/", token_form(user=bob.pk, new_token=SECRET)
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert stored_token(bob) == SECRET
    record = NoboxToken.objects.get(user=bob)
    assert SECRET.encode() not in bytes(record.ciphertext)
    [event] = events("token.set")
    assert (event.actor, event.target_user, event.ip_address) == (admin_user, bob, "203.0.113.7")
    assert SECRET not in event.detail

    page = as_admin.get(f"/admin/chat/noboxtoken/{record.pk}/change/").content.decode()
    assert "…7777" in page
    assert SECRET not in page
    listing = as_admin.get("/admin/chat/noboxtoken/").content.decode()
    for column in ["…7777", "bob", "active", "never"]:
        assert column in listing


def test_replacing_and_changing_expiry_are_audited(as_admin, admin_user, bob, bob_token):
    record = NoboxToken.objects.get(user=bob)
    url = f"/admin/chat/noboxtoken/{record.pk}/change/"
    as_admin.post(url, token_form(new_token="sk-replacement-0001"))
    assert stored_token(bob) == "sk-replacement-0001"
    [replaced] = events("token.replaced")
    assert (replaced.actor, replaced.target_user) == (admin_user, bob)

    as_admin.post(url, token_form(expires_at_0="2030-01-02", expires_at_1="03:04:05"))
    record.refresh_from_db()
    assert record.expires_at is not None and record.expires_at.year == 2030
    assert "2030-01-02" in events("token.expiry_changed")[0].detail


def test_an_admin_revokes_a_token_and_sending_stops(as_admin, bob, bob_token):
    record = NoboxToken.objects.get(user=bob)
    as_admin.post(
        "/admin/chat/noboxtoken/", {"action": "revoke_tokens", "_selected_action": [record.pk]}
    )
    record.refresh_from_db()
    assert record.state == "revoked"
    assert events("token.revoked")
    with pytest.raises(tokens.TokenProblem) as problem:
        tokens.resolve(bob)
    assert problem.value.code == "token_revoked"
    assert "revoked by an admin" in problem.value.message


def test_an_expired_token_stops_sending(bob, bob_token):
    NoboxToken.objects.filter(user=bob).update(expires_at=timezone.now() - timedelta(minutes=1))
    with pytest.raises(tokens.TokenProblem) as problem:
        tokens.resolve(bob)
    assert problem.value.code == "token_expired"


def test_verify_records_the_result_and_time(as_admin, bob, nobox):
    tokens.store_token(bob, "sk-good-token-1234", verified=False)
    tokens.store_token(User.objects.create_user("dan"), "invalid-token-5678", verified=False)
    as_admin.post(
        "/admin/chat/noboxtoken/",
        {
            "action": "verify_tokens",
            "_selected_action": list(NoboxToken.objects.values_list("pk", flat=True)),
        },
    )
    good = NoboxToken.objects.get(user=bob)
    bad = NoboxToken.objects.get(user__username="dan")
    assert good.last_verify_ok is True and good.last_verified_at is not None
    assert bad.last_verify_ok is False and "invalid_token" in bad.last_verify_error
    assert len(events("token.verified")) == 2
    assert all(
        "sk-good" not in e.detail and "invalid-token" not in e.detail
        for e in AuditEvent.objects.all()
    )


def test_a_team_token_serves_allowed_users_and_keeps_usage_theirs(as_admin, bob, charlie):
    response = as_admin.post("/admin/chat/noboxtoken/add/", token_form(new_token="sk-team-0042"))
    assert response.status_code == 302
    team = NoboxToken.objects.get(is_team=True)
    assert team.user is None

    with pytest.raises(tokens.TokenProblem):
        tokens.resolve(bob)  # not allowed yet
    bob.may_use_team_token = True
    bob.save()
    resolved = tokens.resolve(bob)
    assert (resolved.token, resolved.source) == ("sk-team-0042", "team")

    with pytest.raises(tokens.TokenProblem):
        tokens.resolve(charlie)
    NoboxToken.objects.filter(pk=team.pk).update(team_for_everyone=True)
    assert tokens.resolve(charlie).source == "team"


def test_a_users_own_token_wins_over_the_team_token(bob, bob_token):
    tokens.store_team_token("sk-team-0042", actor=None)
    bob.may_use_team_token = True
    bob.save()
    assert tokens.resolve(bob).source == "own"


def test_there_is_only_one_team_token(as_admin):
    tokens.store_team_token("sk-team-0042", actor=None)
    response = as_admin.post("/admin/chat/noboxtoken/add/", token_form(new_token="sk-team-0043"))
    assert response.status_code == 200
    assert "A team token exists already" in response.content.decode()
    assert NoboxToken.objects.filter(is_team=True).count() == 1


def test_creating_a_user_and_making_staff_are_audited(as_admin, admin_user):
    response = as_admin.post(
        "/admin/chat/user/add/",
        {
            "username": "newbie",
            "password1": "a-Long-pass-2026",
            "password2": "a-Long-pass-2026",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    newbie = User.objects.get(username="newbie")
    assert events("user.created")[0].target_user == newbie

    form = as_admin.get(f"/admin/chat/user/{newbie.pk}/change/").context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "password"}
    data.update(
        is_staff="on",
        is_active="on",
        date_joined_0="2026-01-01",
        date_joined_1="00:00:00",
        groups=[],
        user_permissions=[],
    )
    data.pop("last_login", None)
    response = as_admin.post(f"/admin/chat/user/{newbie.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert events("user.made_staff")[0].actor == admin_user


def test_a_password_reset_is_audited(as_admin, alice):
    response = as_admin.post(
        f"/admin/chat/user/{alice.pk}/password/",
        {
            "password1": "Brand-new-pass-77",
            "password2": "Brand-new-pass-77",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    alice.refresh_from_db()
    assert alice.check_password("Brand-new-pass-77")
    assert events("user.password_reset")[0].target_user == alice


def test_deactivating_signs_the_user_out_everywhere(as_admin, alice):
    laptop, phone = Client(), Client()
    laptop.force_login(alice)
    phone.force_login(alice)
    assert Session.objects.count() == 3  # the admin's and alice's two

    as_admin.post(
        "/admin/chat/user/", {"action": "deactivate_users", "_selected_action": [alice.pk]}
    )
    alice.refresh_from_db()
    assert not alice.is_active
    assert events("user.deactivated")[0].target_user == alice
    assert Session.objects.count() == 1
    for device in (laptop, phone):
        assert device.get("/").status_code == 302


def test_unticking_active_on_the_user_form_signs_the_user_out_everywhere(as_admin, alice):
    laptop = Client()
    laptop.force_login(alice)
    page = as_admin.get(f"/admin/chat/user/{alice.pk}/change/")
    form = page.context["adminform"].form
    data = {
        name: value
        for name, value in form.initial.items()
        if value is not None and name not in {"password", "groups", "user_permissions"}
    }
    data.update(is_active="", date_joined_0="2026-01-01", date_joined_1="00:00:00")
    data.pop("last_login", None)
    data.pop("date_joined", None)
    response = as_admin.post(f"/admin/chat/user/{alice.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    alice.refresh_from_db()
    assert not alice.is_active
    assert events("user.deactivated")[0].target_user == alice
    assert Session.objects.count() == 1, "alice's session outlived her deactivation"


def test_an_admin_cannot_deactivate_themself(as_admin, admin_user):
    as_admin.post(
        "/admin/chat/user/", {"action": "deactivate_users", "_selected_action": [admin_user.pk]}
    )
    admin_user.refresh_from_db()
    assert admin_user.is_active


def test_the_audit_trail_is_read_only(as_admin, alice):
    tokens.store_token(alice, "sk-whatever-1111")
    event = AuditEvent.objects.get()
    assert as_admin.get("/admin/chat/auditevent/").status_code == 200
    assert as_admin.get("/admin/chat/auditevent/add/").status_code == 403
    assert (
        as_admin.post(f"/admin/chat/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    page = as_admin.get(f"/admin/chat/auditevent/{event.pk}/change/").content.decode()
    assert "token.set" in page
    assert 'name="_save"' not in page
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_a_user_saving_and_removing_their_token_is_audited(client, alice, nobox):
    client.force_login(alice)
    client.post(
        "/settings/", {"action": "save", "token": "sk-mine-000001"}, REMOTE_ADDR="198.51.100.9"
    )
    client.post("/settings/", {"action": "remove"})
    [saved] = events("token.set")
    assert (saved.actor, saved.ip_address) == (alice, "198.51.100.9")
    assert events("token.removed")[0].actor == alice


def test_key_rotation_re_encrypts_everything_and_is_idempotent(alice, bob, settings, capsys):
    from cryptography.fernet import Fernet
    from django.core.management import call_command

    old_key = settings.NOBOX_TOKEN_KEYS[0]
    tokens.store_token(alice, "sk-alice-rotate-1")
    tokens.store_team_token("sk-team-rotate-2", actor=None)
    new_key = Fernet.generate_key().decode()
    settings.NOBOX_TOKEN_KEYS = [new_key, old_key]

    call_command("rotate_token_keys")
    assert "Re-encrypted 2 token(s); 0 already" in capsys.readouterr().out
    call_command("rotate_token_keys")
    assert "Re-encrypted 0 token(s); 2 already" in capsys.readouterr().out
    assert events("tokens.rotated")

    settings.NOBOX_TOKEN_KEYS = [new_key]  # the old key is gone: everything still reads
    assert stored_token(alice) == "sk-alice-rotate-1"
    assert tokens.decrypt(NoboxToken.objects.get(is_team=True).ciphertext) == "sk-team-rotate-2"


def test_rotation_counts_tokens_no_key_can_read(alice, settings, capsys):
    from cryptography.fernet import Fernet
    from django.core.management import call_command

    tokens.store_token(alice, "sk-alice-lost-1")
    settings.NOBOX_TOKEN_KEYS = [Fernet.generate_key().decode()]
    call_command("rotate_token_keys")
    assert "1 unreadable" in capsys.readouterr().out
    problem = pytest.raises(tokens.TokenProblem, tokens.resolve, alice)
    assert problem.value.code == "token_unreadable"


# --- permissions: every action declares one, superusers are out of reach, grants are audited ----


def staff_with(username: str, *codenames: str) -> User:
    """A staff member (not a superuser) holding exactly these permissions."""
    from django.contrib.auth.models import Permission

    user = User.objects.create_user(username, f"{username}@example.com", f"{username}-pw-123")
    user.is_staff = True
    user.save()
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


VIEW_ONLY = ("view_user", "view_noboxtoken", "view_conversation", "view_auditevent")
CHANGES = (*VIEW_ONLY, "change_user", "change_noboxtoken")


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def run_action(client: Client, model: str, action: str, *pks: int):
    return client.post(f"/admin/chat/{model}/", {"action": action, "_selected_action": pks})


def test_view_only_staff_can_run_no_action(admin_user, alice, bob, bob_token, nobox):
    viewer = signed_in(staff_with("viewer", *VIEW_ONLY))
    alice.is_active = False
    alice.save()
    tokens.store_team_token("sk-team-0042", actor=None)
    token_pks = list(NoboxToken.objects.values_list("pk", flat=True))

    # Each post just re-renders the list: the action is not among the viewer's choices.
    assert run_action(viewer, "user", "deactivate_users", admin_user.pk, bob.pk).status_code == 200
    assert run_action(viewer, "user", "activate_users", alice.pk).status_code == 200
    assert run_action(viewer, "noboxtoken", "revoke_tokens", *token_pks).status_code == 200
    assert run_action(viewer, "noboxtoken", "verify_tokens", *token_pks).status_code == 200

    admin_user.refresh_from_db()
    bob.refresh_from_db()
    alice.refresh_from_db()
    assert (admin_user.is_active, bob.is_active, alice.is_active) == (True, True, False)
    assert all(record.state == "active" for record in NoboxToken.objects.all())
    assert not NoboxToken.objects.filter(last_verified_at__isnull=False, user=None).exists()
    assert not AuditEvent.objects.exclude(action="token.set").exists()
    listing = viewer.get("/admin/chat/user/").content.decode()
    assert "deactivate_users" not in listing


def test_staff_with_change_permission_cannot_touch_superusers(admin_user, bob):
    manager = signed_in(staff_with("manager", *CHANGES))
    run_action(manager, "user", "deactivate_users", admin_user.pk, bob.pk)
    admin_user.refresh_from_db()
    bob.refresh_from_db()
    assert admin_user.is_active and not bob.is_active
    assert [e.target_user for e in events("user.deactivated")] == [bob]

    password_form = f"/admin/chat/user/{admin_user.pk}/password/"
    response = manager.post(
        password_form,
        {"password1": "Take-over-77x", "password2": "Take-over-77x", "usable_password": "true"},
    )
    assert response.status_code == 403
    admin_user.refresh_from_db()
    assert admin_user.check_password("boss-pw-123")
    assert manager.post(f"/admin/chat/user/{admin_user.pk}/change/", {}).status_code == 403
    assert (
        manager.post(f"/admin/chat/user/{admin_user.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert User.objects.filter(pk=admin_user.pk).exists()


def test_staff_cannot_take_over_an_account_with_more_permissions(bob):
    manager = signed_in(staff_with("manager", *CHANGES))
    auditor = staff_with("auditor", *CHANGES, "delete_conversation")
    response = manager.post(
        f"/admin/chat/user/{auditor.pk}/password/",
        {"password1": "Take-over-77x", "password2": "Take-over-77x", "usable_password": "true"},
    )
    assert response.status_code == 403
    response = manager.post(
        f"/admin/chat/user/{bob.pk}/password/",
        {"password1": "Fresh-pass-77x", "password2": "Fresh-pass-77x", "usable_password": "true"},
    )
    assert response.status_code == 302


def test_only_superusers_touch_a_superusers_token(admin_user, as_admin):
    tokens.store_token(admin_user, "sk-boss-token-0099")
    record = NoboxToken.objects.get(user=admin_user)
    manager = signed_in(staff_with("manager", *CHANGES, "delete_noboxtoken"))
    run_action(manager, "noboxtoken", "revoke_tokens", record.pk)
    record.refresh_from_db()
    assert record.state == "active"
    url = f"/admin/chat/noboxtoken/{record.pk}/change/"
    assert manager.post(url, token_form(new_token="sk-attacker-0001")).status_code == 403
    assert stored_token(admin_user) == "sk-boss-token-0099"
    run_action(as_admin, "noboxtoken", "revoke_tokens", record.pk)
    record.refresh_from_db()
    assert record.state == "revoked"


def change_form_data(client: Client, user: User, **changes: object) -> dict[str, object]:
    """What the admin's change form for `user` posts back, with `changes` applied."""
    form = client.get(f"/admin/chat/user/{user.pk}/change/").context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "password"}
    data.update(date_joined_0="2026-01-01", date_joined_1="00:00:00", is_active="on")
    data.pop("last_login", None)
    data.pop("date_joined", None)
    data.update(changes)
    return {k: v for k, v in data.items() if v is not False}


def test_a_non_superuser_cannot_make_themself_superuser(django_user_model):
    from django.contrib.auth.models import Permission

    me = staff_with("climber", *CHANGES)
    client = signed_in(me)
    everything = list(Permission.objects.values_list("pk", flat=True))
    data = change_form_data(
        client, me, is_staff="on", is_superuser="on", user_permissions=everything
    )
    response = client.post(f"/admin/chat/user/{me.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    me.refresh_from_db()
    assert not me.is_superuser
    assert me.user_permissions.count() == len(CHANGES)
    assert not events("user.made_superuser") and not events("user.permissions_changed")


def test_granting_superuser_groups_and_permissions_is_audited(as_admin, admin_user, bob):
    from django.contrib.auth.models import Group, Permission

    team_admins = Group.objects.create(name="team admins")
    revoke = Permission.objects.get(codename="change_noboxtoken")
    data = change_form_data(
        as_admin,
        bob,
        is_staff="on",
        is_superuser="on",
        groups=[team_admins.pk],
        user_permissions=[revoke.pk],
    )
    response = as_admin.post(f"/admin/chat/user/{bob.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    bob.refresh_from_db()
    assert bob.is_superuser
    for action in ("user.made_superuser", "user.made_staff"):
        [event] = events(action)
        assert (event.actor, event.target_user) == (admin_user, bob)
    assert events("user.groups_changed")[0].detail == "added: team admins"
    assert events("user.permissions_changed")[0].detail == "added: chat.change_noboxtoken"

    data = change_form_data(as_admin, bob, is_superuser=False, groups=[], user_permissions=[])
    as_admin.post(f"/admin/chat/user/{bob.pk}/change/", data)
    assert events("user.superuser_removed")[0].target_user == bob
    assert "removed: team admins" in [e.detail for e in events("user.groups_changed")]


# --- the user list and form: Nobox access where an admin looks --------------------------------


def user_list_queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/admin/chat/user/")
    assert response.status_code == 200
    return len(queries)


def add_members(count: int, start: int) -> None:
    """`count` more people, every other one with a token of their own and a reply this month."""
    for n in range(start, start + count):
        person = User.objects.create_user(f"member{n:03d}", f"m{n}@example.com", "pw-12345678")
        if n % 2:
            tokens.store_token(person, f"sk-member-token-{n:04d}", actor_name="test")
            Usage.objects.create(user=person, user_name=person.username, cost=Decimal("0.5"))


def test_the_user_list_costs_the_same_queries_for_5_or_50_people(as_admin):
    add_members(5, 0)
    few = user_list_queries(as_admin)
    add_members(45, 5)
    many = user_list_queries(as_admin)
    assert User.objects.count() == 51
    assert many == few


def test_the_user_list_shows_each_persons_token_and_team_token_permission(as_admin, bob, charlie):
    from tests.test_usage_dashboard import row_of

    tokens.store_token(bob, "sk-bob-own-token-4321", actor_name="test")
    charlie.may_use_team_token = True
    charlie.save()
    html = as_admin.get("/admin/chat/user/").content.decode()
    assert 'class="user-email">bob<wbr>@example.com<' in row_of(html, "bob")
    assert 'field-own_token">…4321 active<' in row_of(html, "bob")
    assert 'field-own_token">none<' in row_of(html, "charlie")
    assert 'field-team_token"><img src="/static/admin/img/icon-no' in row_of(html, "bob")
    assert 'field-team_token"><img src="/static/admin/img/icon-yes' in row_of(html, "charlie")

    tokens.store_team_token("sk-team-token-for-all-1", actor=None, actor_name="test")
    NoboxToken.objects.filter(is_team=True).update(team_for_everyone=True)
    html = as_admin.get("/admin/chat/user/").content.decode()
    assert 'field-team_token"><img src="/static/admin/img/icon-yes' in row_of(html, "bob")


def fieldset_names(html: str) -> list[str]:
    return re.findall(r'<h2 id="fieldset-[^"]*heading" class="fieldset-heading">([^<]*)</h2>', html)


def test_the_user_form_puts_nobox_access_before_status_and_permissions(as_admin, bob):
    html = as_admin.get(f"/admin/chat/user/{bob.pk}/change/").content.decode()
    names = fieldset_names(html)
    assert names.index("Nobox access") < names.index("Status")
    assert names.index("Nobox access") < names.index("Groups and permissions")
    nobox = html.split(">Nobox access<", 1)[1].split("</fieldset>", 1)[0]
    for field in ("may_use_team_token", "monthly_limit"):
        assert f'name="{field}"' in nobox
    assert "Own token:</strong> none set" in nobox
    assert "Save your Nobox token in Settings" in nobox  # what bob's sends would hit
    assert f"/admin/chat/noboxtoken/add/?user={bob.pk}" in nobox
    # Django's groups and permissions fold away (a <details> since Django 5.1).
    permissions = html.split(">Groups and permissions<", 1)[0].rsplit("<fieldset", 1)[1]
    assert "collapse" in permissions


def test_the_user_form_says_who_set_the_token_and_what_sends_use(as_admin, admin_user, bob):
    as_admin.post("/admin/chat/noboxtoken/add/", token_form(user=bob.pk, new_token=SECRET))
    record = NoboxToken.objects.get(user=bob)
    tokens.record_verification(record, None, actor=admin_user)
    html = as_admin.get(f"/admin/chat/user/{bob.pk}/change/").content.decode()
    nobox = html.split(">Nobox access<", 1)[1].split("</fieldset>", 1)[0]
    verified = timezone.localtime(record.last_verified_at)
    assert "Own token:</strong> …7777 (active)" in nobox
    assert f"Last verified:</strong> {verified:%Y-%m-%d %H:%M} (ok)" in nobox
    assert "Set by:</strong> boss, " in nobox
    assert "Sends use:</strong> their own token" in nobox
    assert f"/admin/chat/noboxtoken/{record.pk}/change/" in nobox

    tokens.revoke(record, actor=admin_user)
    bob.may_use_team_token = True
    bob.save()
    tokens.store_team_token("sk-team-token-shared-1", actor=admin_user)
    html = as_admin.get(f"/admin/chat/user/{bob.pk}/change/").content.decode()
    assert "Own token:</strong> …7777 (revoked)" in html
    assert "Sends use:</strong> the team token" in html


def test_the_user_form_shows_this_months_spend_against_the_limit(as_admin, bob):
    bob.monthly_limit = Decimal("2")
    bob.save()
    Usage.objects.create(user=bob, user_name="bob", cost=Decimal("1.75"))
    html = as_admin.get(f"/admin/chat/user/{bob.pk}/change/").content.decode()
    assert "$1.75 of $2.00 (near)" in html


def test_the_conversation_list_filters_by_model_and_names_the_empty_one(as_admin, alice):
    Conversation.objects.create(owner=alice, title="With a model", model="sim/echo")
    Conversation.objects.create(owner=alice, title="Refused before its model was saved")
    page = as_admin.get("/admin/chat/conversation/").content.decode()
    # Every filter choice is a link with words in it (an empty link is unreadable).
    assert ">(none yet)</a>" in page and ">sim/echo</a>" in page
    assert not re.search(r'<a href="\?model=[^"]*">\s*</a>', page)

    empty = as_admin.get("/admin/chat/conversation/?model=__none__").content.decode()
    assert "Refused before its model was saved" in empty and "With a model" not in empty
    chosen = as_admin.get("/admin/chat/conversation/?model=sim/echo").content.decode()
    assert "With a model" in chosen and "Refused before" not in chosen
