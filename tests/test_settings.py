"""Settings fail loudly on bad configuration, and production refuses to start without secrets."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from noboxweb.env import env_bool, env_float, env_int, env_list
from tests.servers import ROOT, TEST_SECRET_KEY, TEST_TOKEN_KEY

STRONG_KEY = TEST_SECRET_KEY


def start_django(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "NOBOX_TOKEN_KEYS", "DEBUG", "DJANGO_SETTINGS_MODULE"}
    }
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('started')"],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "noboxweb.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    result = start_django(DEBUG="0", NOBOX_TOKEN_KEYS="x", NOBOX_VAR_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_refuses_to_start_without_token_keys(tmp_path):
    result = start_django(DEBUG="0", SECRET_KEY=STRONG_KEY, NOBOX_VAR_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "NOBOX_TOKEN_KEYS must be set" in result.stderr


def test_development_generates_its_secrets_under_var(tmp_path):
    result = start_django(DEBUG="1", NOBOX_VAR_DIR=str(tmp_path))
    assert result.stdout.strip() == "started", result.stderr
    assert (tmp_path / "secret_key").exists()
    assert (tmp_path / "token_key").exists()
    assert oct((tmp_path / "token_key").stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize(
    ("reader", "raw"),
    [(env_bool, "maybe"), (env_float, "fast"), (env_int, "1.5"), (env_int, "-3")],
)
def test_bad_values_fail_loudly(monkeypatch, reader, raw):
    monkeypatch.setenv("NOBOX_TEST_VALUE", raw)
    with pytest.raises(ImproperlyConfigured, match="NOBOX_TEST_VALUE"):
        reader("NOBOX_TEST_VALUE", 1)


def test_good_values_are_read(monkeypatch):
    monkeypatch.setenv("A_BOOL", "yes")
    monkeypatch.setenv("A_LIST", " a, b ,,c ")
    assert env_bool("A_BOOL", False) is True
    assert env_list("A_LIST") == ["a", "b", "c"]
    assert env_int("UNSET_INT", 7) == 7


@pytest.mark.django_db
def test_ensure_admin_creates_the_first_admin_once(capsys, django_user_model):
    call_command("ensure_admin", "--username", "root", "--password", "root-password-1")
    assert "Created admin account 'root'" in capsys.readouterr().out
    call_command("ensure_admin", "--username", "other")
    assert "An admin account exists" in capsys.readouterr().out
    assert list(django_user_model.objects.values_list("username", flat=True)) == ["root"]
    assert django_user_model.objects.get(username="root").check_password("root-password-1")


def test_production_refuses_to_start_with_an_invalid_token_key(tmp_path):
    result = start_django(
        DEBUG="0",
        SECRET_KEY=STRONG_KEY,
        NOBOX_TOKEN_KEYS="not-a-fernet-key",
        NOBOX_VAR_DIR=str(tmp_path),
    )
    assert result.returncode != 0
    assert "NOBOX_TOKEN_KEYS: key 1 is not a valid Fernet key" in result.stderr


@pytest.mark.parametrize(
    "weak",
    [
        "short-but-random-Xk29",  # under 50 characters
        "ab" * 40,  # long, but only two distinct characters
        "django-insecure-" + "k3J9x-Qm7Z_p2LrT8vWc4NbY6hDs1FgA0eUo5iKtPjHq",  # startproject's
    ],
)
def test_production_refuses_to_start_with_a_weak_secret_key(tmp_path, weak):
    result = start_django(
        DEBUG="0", SECRET_KEY=weak, NOBOX_TOKEN_KEYS=TEST_TOKEN_KEY, NOBOX_VAR_DIR=str(tmp_path)
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is too weak for production" in result.stderr


def test_production_starts_with_a_strong_secret_key(tmp_path):
    result = start_django(
        DEBUG="0",
        SECRET_KEY=STRONG_KEY,
        NOBOX_TOKEN_KEYS=TEST_TOKEN_KEY,
        NOBOX_VAR_DIR=str(tmp_path),
    )
    assert result.stdout.strip() == "started", result.stderr


def test_development_accepts_any_secret_key(tmp_path):
    result = start_django(DEBUG="1", SECRET_KEY="dev", NOBOX_VAR_DIR=str(tmp_path))
    assert result.stdout.strip() == "started", result.stderr
