"""The doors: what a careless client or an attacker can push through the HTTP side.

Token format at every way in, upstream encoding errors explained, secrets kept out of logs and
error reports, login throttling, the client address behind proxies, production headers and the
request-body cap.
"""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from typing import Any

import httpx
import pytest
from axes.models import AccessAttempt
from django.core.management import CommandError, call_command
from django.test import Client
from django.views.debug import SafeExceptionReporterFilter
from pytest_django.fixtures import Settings

from chat import tokens
from chat.models import AuditEvent, NoboxToken, User
from chat.nobox import InvalidToken, NoboxClient
from chat.nobox.client import UnsendableToken
from tests.conftest import stored_token
from tests.servers import ROOT, TEST_SECRET_KEY, TEST_TOKEN_KEY

pytestmark = pytest.mark.django_db

# A pasted non-breaking hyphen (U+2011): looks right, cannot go into an HTTP header.
NB_HYPHEN_TOKEN = "sk\u2011pasted-token-SECRETPART"
MALFORMED = [
    NB_HYPHEN_TOKEN,
    "sk-has space-SECRETPART",
    "sk-has-newline\n-SECRETPART",
    "sk-\x00-nul-SECRETPART",
    "short",
    "sk-" + "x" * 600,
]


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("boss", "boss@example.com", "boss-pw-123")


@pytest.fixture
def as_admin(admin_user):
    client = Client()
    client.force_login(admin_user)
    return client


def store_unchecked(user: User, token: str) -> NoboxToken:
    """A token saved before format checks existed: written straight to the table."""
    return NoboxToken.objects.create(
        user=user, ciphertext=tokens.encrypt(token), last4=token[-4:], is_team=False
    )


# --- token format at every way in ----------------------------------------------------------------


@pytest.mark.parametrize("token", MALFORMED)
def test_the_store_functions_refuse_a_malformed_token(alice, token):
    with pytest.raises(tokens.MalformedToken, match="does not look like a Nobox token"):
        tokens.store_token(alice, token)
    with pytest.raises(tokens.MalformedToken):
        tokens.store_team_token(token, actor=None)
    assert not NoboxToken.objects.exists()
    assert not AuditEvent.objects.exists()


def test_the_message_says_what_is_wrong_without_echoing_the_token(alice):
    with pytest.raises(tokens.MalformedToken) as problem:
        tokens.store_token(alice, NB_HYPHEN_TOKEN)
    assert "U+2011" in str(problem.value) and "position 3" in str(problem.value)
    assert "SECRETPART" not in str(problem.value)


def test_the_settings_page_refuses_a_non_ascii_token(client, alice, nobox):
    client.force_login(alice)
    response = client.post("/settings/", {"action": "save", "token": NB_HYPHEN_TOKEN})
    assert response.status_code == 200
    page = response.content.decode()
    assert "printable ASCII characters only" in page and "U+2011" in page
    assert "SECRETPART" not in page
    assert not NoboxToken.objects.exists()


def test_the_admin_form_refuses_a_non_ascii_token(as_admin, bob):
    response = as_admin.post(
        "/admin/chat/noboxtoken/add/",
        {"user": bob.pk, "new_token": NB_HYPHEN_TOKEN, "expires_at_0": "", "expires_at_1": ""},
    )
    assert response.status_code == 200
    assert "printable ASCII characters only" in response.content.decode()
    assert not NoboxToken.objects.exists()


def test_the_command_refuses_a_non_ascii_token(alice, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(NB_HYPHEN_TOKEN + "\n"))
    with pytest.raises(CommandError, match="Nothing was saved: That does not look like"):
        call_command("set_nobox_token", "alice")
    assert not NoboxToken.objects.exists()


@pytest.mark.parametrize(
    ("username", "stdin", "refusal"),
    [("nobody", "sk-some-token-0001\n", "No user 'nobody'"), ("alice", "\n", "standard input")],
)
def test_the_command_saves_nothing_without_a_user_or_a_token(
    alice, monkeypatch, username, stdin, refusal
):
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    with pytest.raises(CommandError, match=refusal):
        call_command("set_nobox_token", username)
    assert not NoboxToken.objects.exists()


# --- a bad token already stored: explained, never a 500 ------------------------------------------


@pytest.mark.parametrize("token", [NB_HYPHEN_TOKEN, "sk-has-newline\n-SECRETPART"])
async def test_the_client_turns_header_errors_into_a_typed_error(simulator_url, token):
    async with httpx.AsyncClient() as http:
        client = NoboxClient(simulator_url, http)
        with pytest.raises(UnsendableToken) as raised:
            await client.list_models(token)
    assert isinstance(raised.value, InvalidToken)
    assert "cannot be sent in an HTTP header" in raised.value.message
    assert "SECRETPART" not in repr(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_the_models_list_explains_a_stored_non_ascii_token(client, alice, nobox, caplog):
    store_unchecked(alice, NB_HYPHEN_TOKEN)
    client.force_login(alice)
    response = client.get("/api/models")
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "invalid_token"
    assert "cannot be sent in an HTTP header" in error["message"]
    assert NoboxToken.objects.get(user=alice).state == "rejected"  # sending stops until replaced
    assert not [r for r in caplog.records if "SECRETPART" in r.getMessage()]


def test_the_admin_verify_action_explains_a_stored_non_ascii_token(as_admin, alice, nobox):
    record = store_unchecked(alice, NB_HYPHEN_TOKEN)
    response = as_admin.post(
        "/admin/chat/noboxtoken/",
        {"action": "verify_tokens", "_selected_action": [record.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert "cannot be sent in an HTTP header" in response.content.decode()
    record.refresh_from_db()
    assert record.last_verify_ok is False
    assert "cannot be sent" in record.last_verify_error


# --- secrets out of error reports and logs -------------------------------------------------------


def test_the_settings_view_hides_the_token_from_error_reports(client, alice):
    client.force_login(alice)
    response = client.post("/settings/", {"action": "save", "token": "sk has space"})
    post = SafeExceptionReporterFilter().get_post_parameters(response.wsgi_request)
    assert post["token"] == "********************"
    assert post["action"] == "save"


def test_the_admin_token_form_hides_the_token_from_error_reports(as_admin, bob):
    response = as_admin.post(
        "/admin/chat/noboxtoken/add/",
        {"user": bob.pk, "new_token": "sk has space", "expires_at_0": "", "expires_at_1": ""},
    )
    post = SafeExceptionReporterFilter().get_post_parameters(response.wsgi_request)
    assert post["new_token"] == "********************"
    assert post["user"] == str(bob.pk)


def configured_handlers() -> list[logging.Handler]:
    names = ["", "django", "django.request", "django.server", "chat", "asyncio", "httpx"]
    found: list[logging.Handler] = []
    for name in names:
        logger: logging.Logger | None = logging.getLogger(name)
        while logger is not None:
            found += [h for h in logger.handlers if type(h).__module__ != "_pytest.logging"]
            logger = logger.parent if logger.propagate else None
    return found


def test_every_configured_log_handler_redacts():
    handlers = configured_handlers()
    assert {type(h).__name__ for h in handlers} >= {"StreamHandler", "AdminEmailHandler"}
    for handler in handlers:
        assert any(type(f).__name__ == "RedactSecretsFilter" for f in handler.filters), handler


def test_a_logged_header_error_is_written_without_the_token():
    [console] = [h for h in logging.getLogger().handlers if type(h) is logging.StreamHandler]
    out = io.StringIO()
    previous = console.setStream(out)
    try:
        try:
            httpx.Headers({"Authorization": f"Bearer {NB_HYPHEN_TOKEN}"})
        except UnicodeEncodeError as exc:
            logging.getLogger("chat.pricing").error(
                "Task exception was never retrieved: %r", exc, exc_info=True
            )
        logging.getLogger("chat").warning("sent Authorization: Bearer sk-plain-SECRETPART-0001")
    finally:
        console.setStream(previous)
    written = out.getvalue()
    assert "Task exception was never retrieved" in written and "Traceback" in written
    assert "Bearer [redacted]" in written
    assert "SECRETPART" not in written and "pasted-token" not in written


# --- audit rows name the command that wrote them -------------------------------------------------


def test_audit_rows_from_commands_name_the_command(alice, monkeypatch, settings):
    monkeypatch.setattr(sys, "stdin", io.StringIO("sk-from-the-shell-0001\n"))
    call_command("set_nobox_token", "alice")
    assert stored_token(alice) == "sk-from-the-shell-0001"
    [event] = AuditEvent.objects.filter(action="token.set")
    assert (event.actor, event.actor_name, event.target_user) == (
        None,
        "manage.py set_nobox_token",
        alice,
    )
    call_command("rotate_token_keys")
    assert AuditEvent.objects.get(action="tokens.rotated").actor_name == (
        "manage.py rotate_token_keys"
    )
    call_command("ensure_admin", "--username", "root", "--password", "root-password-1")
    assert {e.action for e in AuditEvent.objects.filter(actor_name="manage.py ensure_admin")} == {
        "user.created",
        "user.made_superuser",
    }


# --- login throttling -----------------------------------------------------------------------------


def sign_in(client: Client, username: str, password: str, **extra: Any):
    return client.post("/accounts/login/", {"username": username, "password": password}, **extra)


def test_a_hundred_wrong_passwords_lock_the_account_out(alice):
    client = Client(REMOTE_ADDR="198.51.100.20")
    for _ in range(100):
        assert sign_in(client, "alice", "wrong-guess").status_code in (200, 429)
    response = sign_in(client, "alice", "alice-password")
    assert response.status_code == 429
    assert "Too many sign-in attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session
    # From another address the account stays locked: guessing is spread over addresses.
    elsewhere = Client(REMOTE_ADDR="203.0.113.99")
    assert sign_in(elsewhere, "alice", "alice-password").status_code == 429


def test_one_address_guessing_many_accounts_is_locked_out(alice, bob, settings):
    client = Client(REMOTE_ADDR="198.51.100.21")
    for number in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, f"nobody{number}", "guess")
    assert sign_in(client, "bob", "bob-password").status_code == 429
    assert Client(REMOTE_ADDR="198.51.100.22").get("/accounts/login/").status_code == 200
    assert sign_in(Client(REMOTE_ADDR="198.51.100.22"), "bob", "bob-password").status_code == 302


def test_a_correct_password_before_the_limit_signs_in(alice, settings):
    client = Client(REMOTE_ADDR="198.51.100.23")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        sign_in(client, "alice", "wrong-guess")
    assert sign_in(client, "alice", "alice-password").status_code == 302


def test_admins_see_lockouts_in_the_admin(alice, as_admin, settings):
    client = Client(REMOTE_ADDR="198.51.100.24")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, "alice", "wrong-guess")
    page = as_admin.get("/admin/axes/accessattempt/").content.decode()
    assert "alice" in page and "198.51.100.24" in page


# --- the client address behind proxies -----------------------------------------------------------


def audited_address(
    settings: Settings, remote: str, forwarded: str | None, proxies: int
) -> str | None:
    settings.TRUSTED_PROXY_COUNT = proxies
    user = User.objects.create_user(f"u{User.objects.count()}")
    client = Client(REMOTE_ADDR=remote)
    client.force_login(user)
    headers: dict[str, Any] = {} if forwarded is None else {"HTTP_X_FORWARDED_FOR": forwarded}
    client.post("/settings/", {"action": "remove"}, **headers)
    tokens.store_token(user, "sk-whatever-0001")  # so "remove" has something to audit
    client.post("/settings/", {"action": "remove"}, **headers)
    return AuditEvent.objects.filter(action="token.removed", target_user=user).get().ip_address


@pytest.mark.parametrize(
    ("remote", "forwarded", "proxies", "expected"),
    [
        # No trusted proxy: the header is the client's own words and is ignored.
        ("203.0.113.5", "1.2.3.4", 0, "203.0.113.5"),
        # nginx appends the address it saw; the client can only write to its left.
        ("127.0.0.1", "6.6.6.6, 203.0.113.5", 1, "203.0.113.5"),
        ("127.0.0.1", "203.0.113.5", 1, "203.0.113.5"),
        # A CDN in front of nginx: the CDN's entry is last, the client's before it.
        ("127.0.0.1", "6.6.6.6, 203.0.113.5, 192.0.2.10", 2, "203.0.113.5"),
        # Fewer entries than proxies, no header, or garbage: only the peer is certain.
        ("127.0.0.1", "203.0.113.5", 2, "127.0.0.1"),
        ("127.0.0.1", None, 1, "127.0.0.1"),
        ("127.0.0.1", "6.6.6.6, not-an-ip", 1, "127.0.0.1"),
        ("127.0.0.1", "2001:db8::1", 1, "2001:db8::1"),
    ],
)
def test_the_audit_trail_takes_the_address_from_trusted_proxies_only(
    settings, remote, forwarded, proxies, expected
):
    assert audited_address(settings, remote, forwarded, proxies) == expected


def test_a_forged_forwarded_for_does_not_escape_a_lockout(alice, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    for number in range(settings.AXES_FAILURE_LIMIT):
        forged = f"10.0.0.{number}, 198.51.100.30"  # the client rotates what it claims to be
        sign_in(
            Client(REMOTE_ADDR="127.0.0.1"), f"nobody{number}", "guess", HTTP_X_FORWARDED_FOR=forged
        )
    addresses = set(AccessAttempt.objects.values_list("ip_address", flat=True))
    assert addresses == {"198.51.100.30"}
    locked = sign_in(
        Client(REMOTE_ADDR="127.0.0.1"),
        "alice",
        "alice-password",
        HTTP_X_FORWARDED_FOR="1.1.1.1, 198.51.100.30",
    )
    assert locked.status_code == 429


# --- production headers, routes and limits -------------------------------------------------------


def production_setting(expression: str, **env: str) -> str:
    """Evaluate `expression` against noboxweb.settings as production would load it."""
    base = {
        "DEBUG": "0",
        "SECRET_KEY": TEST_SECRET_KEY,
        "NOBOX_TOKEN_KEYS": TEST_TOKEN_KEY,
        "DJANGO_SETTINGS_MODULE": "noboxweb.settings",
        "PATH": "/usr/bin:/bin",
    }
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        f"print(repr(({expression})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


def test_hsts_and_https_redirect_follow_the_tls_proxy_switch(tmp_path):
    expression = "s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS"
    var = str(tmp_path)
    assert production_setting(expression, NOBOX_VAR_DIR=var) == "(False, 0, False)"
    behind = production_setting(expression, NOBOX_VAR_DIR=var, BEHIND_TLS_PROXY="1")
    assert behind == "(True, 31536000, True)"
    overridden = production_setting(
        expression,
        NOBOX_VAR_DIR=var,
        BEHIND_TLS_PROXY="1",
        SECURE_SSL_REDIRECT="0",
        SECURE_HSTS_SECONDS="3600",
    )
    assert overridden == "(False, 3600, True)"


def test_plain_http_is_redirected_and_https_gets_hsts(settings, alice):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    client = Client()
    plain = client.get("/accounts/login/")
    assert plain.status_code == 301 and plain["Location"].startswith("https://")
    secure = client.get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https")
    assert secure.status_code == 200
    assert secure["Strict-Transport-Security"].startswith("max-age=31536000")


def test_signed_in_pages_are_not_stored_by_caches(client, alice):
    client.force_login(alice)
    for url in ["/", "/settings/", "/api/models", "/accounts/password_change/"]:
        cache_control = client.get(url).get("Cache-Control", "")
        assert "private" in cache_control and "no-store" in cache_control, url


def test_static_files_stay_cacheable(client, alice):
    client.force_login(alice)
    response = client.get("/static/chat/app.css")
    assert response.status_code == 200
    assert "no-store" not in response.get("Cache-Control", "")


def test_there_is_no_password_reset_by_email(client):
    for url in [
        "/accounts/password_reset/",
        "/accounts/password_reset/done/",
        "/accounts/reset/MQ/set-password/",
        "/accounts/reset/done/",
    ]:
        assert client.get(url).status_code == 404, url
    assert "Forgotten your password" not in client.get("/admin/login/").content.decode()


def test_an_oversized_request_body_is_refused(client, alice, settings):
    client.force_login(alice)
    huge = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    response = client.post("/settings/", {"action": "save", "token": huge})
    assert response.status_code == 400
    assert not NoboxToken.objects.exists()
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == 1024 * 1024
