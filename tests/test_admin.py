"""The admin side: users, tokens (write-only, verify, revoke, expiry, team token), audit trail."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from chat import tokens
from chat.models import AuditEvent, NoboxToken, User

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
    assert tokens.token_for(bob) == SECRET
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
    assert tokens.token_for(bob) == "sk-replacement-0001"
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
    assert tokens.token_for(alice) == "sk-alice-rotate-1"
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
