"""Settings for noboxweb: one file, driven by the environment.

Embedded defaults (DEBUG on): SQLite under var/, in-memory channel layer, secrets generated into
var/. Production (DEBUG off): SECRET_KEY and NOBOX_TOKEN_KEYS must come from the environment;
DATABASE_URL and REDIS_URL switch to PostgreSQL and Redis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

from noboxweb.env import (
    dev_secret,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_str,
    fernet_keys_or_fail,
)

# Lets type-parameterised Django generics (ModelAdmin[Model]) run as well as type-check.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("NOBOX_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = dev_secret(VAR_DIR / "secret_key")

# Comma-separated Fernet keys: the first encrypts, all decrypt (rotation).
NOBOX_TOKEN_KEYS = env_list("NOBOX_TOKEN_KEYS")
if not NOBOX_TOKEN_KEYS:
    if not DEBUG:
        raise ImproperlyConfigured("NOBOX_TOKEN_KEYS must be set when DEBUG is off")
    NOBOX_TOKEN_KEYS = [dev_secret(VAR_DIR / "token_key", make="fernet")]
fernet_keys_or_fail("NOBOX_TOKEN_KEYS", NOBOX_TOKEN_KEYS)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "chat.security.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "noboxweb.urls"
ASGI_APPLICATION = "noboxweb.asgi.application"
AUTH_USER_MODEL = "chat.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "chat:home"
LOGOUT_REDIRECT_URL = "login"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _database() -> dict[str, Any]:
    url = env_str("DATABASE_URL")
    if url:
        # ASGI serves many requests from few threads: keep connections short-lived unless the
        # operator opts in (persistent connections leak under async, see docs/deploy.md).
        config = dj_database_url.parse(
            url, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0), conn_health_checks=True
        )
        return dict(config)
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": VAR_DIR / "noboxweb.sqlite3",
        "OPTIONS": {
            # WAL lets readers run beside the one writer; IMMEDIATE takes the write lock at the
            # start of a transaction so two writers queue on the busy timeout instead of failing.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        },
    }


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def _channel_layers() -> dict[str, Any]:
    url = env_str("REDIS_URL")
    if url:
        return {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {
                    # redis-py 8 defaults to a 5 s socket timeout, equal to the layer's
                    # blocking pop, so idle sockets died; and with any socket timeout redis-py
                    # wraps I/O in asyncio.wait_for, which on Python 3.11 can swallow a
                    # cancellation (CPython #86296) and leave a task stuck. No read timeout, as
                    # in redis-py 7; keepalive still detects dead peers.
                    "hosts": [
                        {
                            "address": url,
                            "socket_timeout": None,
                            "socket_connect_timeout": 5,
                            "socket_keepalive": True,
                        }
                    ],
                    "capacity": env_int("CHANNEL_LAYER_CAPACITY", 1000, minimum=100),
                    "expiry": env_int("CHANNEL_LAYER_EXPIRY", 60, minimum=10),
                    "prefix": env_str("CHANNEL_LAYER_PREFIX", "noboxweb"),
                },
            }
        }
    return {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": 1000, "expiry": 60},
        }
    }


CHANNEL_LAYERS = _channel_layers()

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
NODE_MODULES = BASE_DIR / "node_modules"
# Third-party browser libraries come from npm (package.json); only their built files are served.
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("vendor/marked", NODE_MODULES / "marked" / "lib"),
    ("vendor/dompurify", NODE_MODULES / "dompurify" / "dist"),
    ("vendor/highlight", NODE_MODULES / "@highlightjs" / "cdn-assets"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

# Security headers; cookies are Secure whenever the site is served over HTTPS in production.
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
if env_bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Nobox -------------------------------------------------------------------------------------
NOBOX_BASE_URL = env_str("NOBOX_BASE_URL", "https://api.nobox.cloud/_f_")
NOBOX_INCLUDE_USAGE = env_bool("NOBOX_INCLUDE_USAGE", True)
NOBOX_CONNECT_TIMEOUT = env_float("NOBOX_CONNECT_TIMEOUT", 10.0)
NOBOX_FIRST_BYTE_TIMEOUT = env_float("NOBOX_FIRST_BYTE_TIMEOUT", 60.0)
NOBOX_STALL_TIMEOUT = env_float("NOBOX_STALL_TIMEOUT", 60.0)
NOBOX_TOTAL_TIMEOUT = env_float("NOBOX_TOTAL_TIMEOUT", 900.0)
NOBOX_RETRY_ATTEMPTS = env_int("NOBOX_RETRY_ATTEMPTS", 3, minimum=1)

# --- Replies -----------------------------------------------------------------------------------
# Deltas are coalesced into frames at most this often (seconds): a fast model must not mean
# thousands of tiny frames.
REPLY_FLUSH_INTERVAL = env_float("REPLY_FLUSH_INTERVAL", 0.03)
# The text of a streaming reply is written to the database at most this often (seconds); a
# process that dies loses at most this much text.
REPLY_CHECKPOINT_INTERVAL = env_float("REPLY_CHECKPOINT_INTERVAL", 1.0)
# A streaming reply whose heartbeat is older than this (seconds) belongs to a dead process and is
# marked interrupted by the sweep, which runs every REPLY_SWEEP_INTERVAL seconds in each process.
REPLY_ORPHAN_AFTER = env_float("REPLY_ORPHAN_AFTER", 10.0)
REPLY_SWEEP_INTERVAL = env_float("REPLY_SWEEP_INTERVAL", 5.0)

# --- Limits ------------------------------------------------------------------------------------
MAX_FRAME_BYTES = env_int("MAX_FRAME_BYTES", 12 * 1024 * 1024, minimum=1024)
MAX_MESSAGE_CHARS = env_int("MAX_MESSAGE_CHARS", 100_000, minimum=100)
MAX_SYSTEM_PROMPT_CHARS = env_int("MAX_SYSTEM_PROMPT_CHARS", 20_000, minimum=100)
MAX_ATTACHMENT_BYTES = env_int("MAX_ATTACHMENT_BYTES", 8 * 1024 * 1024, minimum=1024)
MAX_OUTPUT_TOKENS = env_int("MAX_OUTPUT_TOKENS", 32_000, minimum=1)

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # httpx logs request lines at INFO; they carry no token, but keep upstream chatter quiet.
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}
