"""Typed readers for environment settings: a bad value fails loudly at start-up."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from noboxweb.environ import env_number

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), not {raw!r}")


def env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    try:
        return env_number(os.environ, name, float, default, minimum=minimum)
    except ValueError as exc:
        raise ImproperlyConfigured(str(exc)) from None


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    try:
        return env_number(os.environ, name, int, default, minimum=minimum)
    except ValueError as exc:
        raise ImproperlyConfigured(str(exc)) from None


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def fernet_keys_or_fail(name: str, keys: list[str]) -> None:
    """Refuse to start with a key that is not a Fernet key: tokens could not be read back."""
    from cryptography.fernet import Fernet

    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key.encode())
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"{name}: key {position} is not a valid Fernet key (32 url-safe base64 bytes)"
            ) from exc


def dev_secret(path: Path, make: str = "urlsafe") -> str:
    """Read a development secret from `path`, generating it on first use.

    Only used when DEBUG is on, so a fresh checkout runs with no set-up while production must
    provide its secrets through the environment.
    """
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    if make == "fernet":
        from cryptography.fernet import Fernet

        value = Fernet.generate_key().decode()
    else:
        value = secrets.token_urlsafe(50)
    path.write_text(value + "\n")
    path.chmod(0o600)
    return value
