"""`manage.py check --deploy` passes on production-shaped settings, with warnings as failures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.servers import ROOT, app_env

DEPLOY_CHECK = ["check", "--deploy", "--fail-level", "WARNING"]


def production_env(var_dir: Path, **overrides: str) -> dict[str, str]:
    """What docs/deploy.md tells an operator to set (the database stays SQLite here)."""
    env = app_env(
        var_dir,
        DEBUG="0",
        BEHIND_TLS_PROXY="1",
        TRUSTED_PROXY_COUNT="1",
        ALLOWED_HOSTS="chat.example.com",
        CSRF_TRUSTED_ORIGINS="https://chat.example.com",
        DJANGO_SETTINGS_MODULE="noboxweb.settings",
    )
    env.update(overrides)
    return env


def check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *DEPLOY_CHECK],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_deploy_check_passes_with_production_settings(tmp_path):
    result = check(production_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_the_deploy_check_fails_without_tls(tmp_path):
    # The same check catches a real gap: without the TLS switch there is no HSTS or redirect.
    result = check(production_env(tmp_path, BEHIND_TLS_PROXY="0"))
    assert result.returncode != 0
    assert "security.W004" in result.stderr and "security.W008" in result.stderr


def test_the_nginx_example_matches_the_trusted_proxy_setting():
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    nginx = deploy.split("```nginx", 1)[1].split("```", 1)[0]
    forwarded = [line for line in nginx.splitlines() if "X-Forwarded-For" in line]
    assert forwarded and all("$proxy_add_x_forwarded_for" in line for line in forwarded)
    assert "client_max_body_size 1m;" in nginx
    assert "TRUSTED_PROXY_COUNT=1" in deploy
