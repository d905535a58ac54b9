"""Settings for noboxweb: one file, driven by the environment.

Embedded defaults (DEBUG on): SQLite under var/, replies relayed in-process, secrets generated into
var/. Production (DEBUG off): SECRET_KEY and NOBOX_TOKEN_KEYS must come from the environment;
DATABASE_URL and REDIS_URL switch to PostgreSQL and Redis.
"""

from __future__ import annotations

from datetime import timedelta
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


def _refuse_weak_secret_key(key: str) -> None:
    """Sessions, CSRF and password-reset links are only as strong as this key; the same bar as
    Django's deploy check (security.W009), but enforced at start-up."""
    if key.startswith("django-insecure-") or len(key) < 50 or len(set(key)) < 5:
        raise ImproperlyConfigured(
            "SECRET_KEY is too weak for production: use 50 or more random characters, e.g. "
            'python -c "import secrets; print(secrets.token_urlsafe(50))"'
        )


SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = dev_secret(VAR_DIR / "secret_key")
if not DEBUG:
    _refuse_weak_secret_key(SECRET_KEY)

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
    "axes",
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Compresses what the views below answer (pages, JSON); WhiteNoise's files never reach it.
    "chat.compression.PageGZipMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The browser's Accept-Language picks the language (no URL prefixes); after the session,
    # before CommonMiddleware, as Django requires.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "chat.private_pages.PrivatePagesMiddleware",
    # Turns a lockout raised by the authentication backend into the lockout page (429).
    "axes.middleware.AxesMiddleware",
    "chat.csp.ContentSecurityPolicyMiddleware",
]

# Login throttling (django-axes): after LOGIN_FAILURE_LIMIT failures, an account and an address
# are each locked out for LOGIN_LOCKOUT_MINUTES, the right password included. Admins see and
# clear lockouts under "Axes" in the admin, or with `manage.py axes_reset`.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 10, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_float("LOGIN_LOCKOUT_MINUTES", 15.0, minimum=1.0))
# Either one locks: guessing one account from many addresses, or many accounts from one address.
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
# The same client address as the audit trail (TRUSTED_PROXY_COUNT below), never a raw header.
AXES_CLIENT_IP_CALLABLE = "chat.audit.client_address"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"

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
                "django.template.context_processors.i18n",
                "chat.languages.page_language",
            ],
        },
    },
]


def _database() -> dict[str, Any]:
    url = env_str("DATABASE_URL")
    if url:
        # Django's connection pool (psycopg_pool): the ORM threads borrow a connection per call
        # and give it back, so a reply costs no new connection in steady state; health checks
        # replace connections a restarted server broke.
        config: dict[str, Any] = dict(
            dj_database_url.parse(url, conn_max_age=0, conn_health_checks=True)
        )
        if config["ENGINE"] == "django.db.backends.postgresql":
            # With conn_health_checks Django has the pool check each connection as it is lent
            # (an empty query): after a database restart every pooled connection is dead.
            config.setdefault("OPTIONS", {})["pool"] = {
                "min_size": env_int("DATABASE_POOL_MIN", 2, minimum=0),
                "max_size": env_int("DATABASE_POOL_MAX", 20, minimum=1),
                "timeout": env_float("DATABASE_POOL_TIMEOUT", 10.0),
            }
        return config
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": VAR_DIR / "noboxweb.sqlite3",
        # Each ORM thread keeps its connection (chat.database): opening one costs more than most
        # queries it serves.
        "CONN_MAX_AGE": None,
        "CONN_HEALTH_CHECKS": True,
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


# Threads that run ORM calls for async code (chat.database); with PostgreSQL keep it at or below
# DATABASE_POOL_MAX. SQLite takes one writer at a time and makes the others poll its lock with
# sleeps of up to 100 ms, so there one thread that runs every call in turn is much faster.
_SQLITE = DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
DATABASE_THREADS = env_int("DATABASE_THREADS", 1 if _SQLITE else 8, minimum=1)

# Redis carries relay events between server processes (pub/sub, chat.replies.bus); without it
# the app runs as one process. No channel layer is used.
REDIS_URL = env_str("REDIS_URL")
REDIS_PREFIX = env_str("REDIS_PREFIX", "noboxweb")
# Connections for publishing; a publish waits for a free one rather than failing.
REDIS_MAX_CONNECTIONS = env_int("REDIS_MAX_CONNECTIONS", 4, minimum=1)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
# Languages the interface is translated into (locale/; README, "Languages").
LANGUAGES = [("en", "English"), ("de", "Deutsch")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
NODE_MODULES = BASE_DIR / "node_modules"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Third-party browser libraries come from npm (package.json): these files and no others are
# served (chat.static_vendor), as {static path: path under node_modules}.
VENDOR_FILES = {
    "vendor/marked/marked.esm.js": "marked/lib/marked.esm.js",
    # Named by marked.esm.js (sourceMappingURL): the hashing storage needs it to exist.
    "vendor/marked/marked.esm.js.map": "marked/lib/marked.esm.js.map",
    "vendor/dompurify/purify.es.mjs": "dompurify/dist/purify.es.mjs",
    # highlight.js's core; its grammars are added below (static/chat/highlight.js loads them).
    "vendor/highlight/es/core.min.js": "@highlightjs/cdn-assets/es/core.min.js",
    "vendor/highlight/styles/github.min.css": "@highlightjs/cdn-assets/styles/github.min.css",
    "vendor/highlight/styles/github-dark.min.css": (
        "@highlightjs/cdn-assets/styles/github-dark.min.css"
    ),
    # A classic script (it defines window.Chart): its ES build imports a bare npm name.
    "vendor/chart.js/chart.umd.min.js": "chart.js/dist/chart.umd.min.js",
    "vendor/chart.js/chart.umd.min.js.map": "chart.js/dist/chart.umd.min.js.map",
    # TeX to MathML, loaded by render.js only once a message holds math (150 kB compressed).
    "vendor/katex/katex.mjs": "katex/dist/katex.mjs",
}
# The languages static/chat/highlight.js highlights (tests/test_static.py checks they agree).
HIGHLIGHT_GRAMMARS = [
    "bash",
    "c",
    "cpp",
    "csharp",
    "css",
    "diff",
    "go",
    "graphql",
    "ini",
    "java",
    "javascript",
    "json",
    "kotlin",
    "less",
    "lua",
    "makefile",
    "markdown",
    "objectivec",
    "perl",
    "php",
    "python",
    "r",
    "ruby",
    "rust",
    "scss",
    "shell",
    "sql",
    "swift",
    "typescript",
    "vbnet",
    "wasm",
    "xml",
    "yaml",
]
VENDOR_FILES |= {
    f"vendor/highlight/es/languages/{name}.min.js": (
        f"@highlightjs/cdn-assets/es/languages/{name}.min.js"
    )
    for name in HIGHLIGHT_GRAMMARS
}
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "chat.static_vendor.VendorFinder",
]
STORAGES = {
    # Attachments (chat.attachments), served only through chat.views.attachment: never a
    # public URL. Any Django storage backend can take its place.
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": VAR_DIR / "files", "base_url": "/no-public-url/"},
    },
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "chat.static_storage.HashedModuleStorage"
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
BEHIND_TLS_PROXY = env_bool("BEHIND_TLS_PROXY", False)
if BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# HTTPS only, once a TLS proxy is in front: plain HTTP is redirected and browsers remember (HSTS).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", BEHIND_TLS_PROXY)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if BEHIND_TLS_PROXY else 0)
# Covers names under the site's own host (e.g. *.chat.example.com), not its parent domain.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", SECURE_HSTS_SECONDS > 0)
# Preloading commits the whole registrable domain, which is the operator's call, not the app's;
# SECURE_HSTS_PRELOAD=1 opts in, and only then is Django's reminder about it (W021) shown.
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
# Proxies in front of the app that append to X-Forwarded-For (nginx with
# $proxy_add_x_forwarded_for counts as one). 0: the peer address is the client. Entries left of
# the last TRUSTED_PROXY_COUNT were written by the client and are never believed.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)

# Request bodies: every form here is small (a token, a title, admin forms) and files never come
# over HTTP (attachments travel in WebSocket frames), so anything bigger is refused (400).
# Conversation import (chat.conversation_export): the JSON file, attachments included, is read
# by its own view up to this size, not by Django's form parsing.
MAX_IMPORT_BYTES = env_int("MAX_IMPORT_BYTES", 64 * 1024 * 1024, minimum=1024 * 1024)
MAX_IMPORT_MESSAGES = 10_000
MAX_IMPORT_MESSAGE_CHARS = 1_000_000
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BODY_BYTES", 1024 * 1024, minimum=64 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = DATA_UPLOAD_MAX_MEMORY_SIZE
DATA_UPLOAD_MAX_NUMBER_FILES = 0
# Admin bulk actions post one field per selected row.
DATA_UPLOAD_MAX_NUMBER_FIELDS = 10_000

# --- Nobox -------------------------------------------------------------------------------------
NOBOX_BASE_URL = env_str("NOBOX_BASE_URL", "https://api.nobox.cloud/_f_")
NOBOX_INCLUDE_USAGE = env_bool("NOBOX_INCLUDE_USAGE", True)
NOBOX_CONNECT_TIMEOUT = env_float("NOBOX_CONNECT_TIMEOUT", 10.0)
NOBOX_FIRST_BYTE_TIMEOUT = env_float("NOBOX_FIRST_BYTE_TIMEOUT", 60.0)
NOBOX_STALL_TIMEOUT = env_float("NOBOX_STALL_TIMEOUT", 60.0)
NOBOX_TOTAL_TIMEOUT = env_float("NOBOX_TOTAL_TIMEOUT", 900.0)
NOBOX_RETRY_ATTEMPTS = env_int("NOBOX_RETRY_ATTEMPTS", 3, minimum=1)
NOBOX_FAST_TRANSPORT = env_bool("NOBOX_FAST_TRANSPORT", True)

# --- Replies -----------------------------------------------------------------------------------
# The model that names new conversations after their first reply (chat.titles); empty: the
# conversation's own model; "off": no title calls.
TITLE_MODEL = env_str("TITLE_MODEL", "")
# Deltas are coalesced into frames at most this often (seconds): a fast model must not mean
# thousands of tiny frames. A process whose event loop runs late stretches the interval by
# twice its delay, up to REPLY_FLUSH_LONGEST (chat.replies.relay.flush_interval): when it
# cannot keep up, fewer and larger frames keep every reply moving.
REPLY_FLUSH_INTERVAL = env_float("REPLY_FLUSH_INTERVAL", 0.03)
REPLY_FLUSH_LONGEST = env_float("REPLY_FLUSH_LONGEST", 0.25)
# The text of a streaming reply is written to the database at most this often (seconds); a
# process that dies loses at most this much text.
REPLY_CHECKPOINT_INTERVAL = env_float("REPLY_CHECKPOINT_INTERVAL", 1.0)
# A streaming reply whose heartbeat is older than this (seconds) belongs to a dead process and is
# marked interrupted by the sweep, which runs every REPLY_SWEEP_INTERVAL seconds in each process.
REPLY_ORPHAN_AFTER = env_float("REPLY_ORPHAN_AFTER", 10.0)
REPLY_SWEEP_INTERVAL = env_float("REPLY_SWEEP_INTERVAL", 5.0)
# A deleted conversation can be restored (Undo) for this long (seconds); the same sweep then
# purges it for good.
CONVERSATION_UNDO_SECONDS = env_float("CONVERSATION_UNDO_SECONDS", 10.0, minimum=1.0)
# The relay's repairs (chat.replies.hub), in seconds: how often the watchdog looks; how long a
# socket waits for the generating process to answer `sync` before the database checkpoint is
# shown; how long a followed reply may stay silent before its row is checked for a lost `done`.
RELAY_WATCHDOG_INTERVAL = env_float("RELAY_WATCHDOG_INTERVAL", 1.0)
RELAY_SNAPSHOT_FALLBACK = env_float("RELAY_SNAPSHOT_FALLBACK", 3.0)
RELAY_SILENCE_CHECK = env_float("RELAY_SILENCE_CHECK", 5.0)
# A socket's session (still signed in, password unchanged, user active) is re-checked at a frame
# when its last check is older than this (seconds); sign-out, deactivation and password changes
# are pushed to sockets at once anyway.
SESSION_RECHECK = env_float("SESSION_RECHECK", 30.0)
# Frames a socket may have waiting to be written; past that it is resynchronised from a snapshot.
SOCKET_QUEUE_FRAMES = env_int("SOCKET_QUEUE_FRAMES", 500, minimum=10)

# --- Limits ------------------------------------------------------------------------------------
# A frame's UTF-8 bytes; also daphne's WebSocket message and frame limit under noboxweb.serve (a
# bigger frame closes the socket with 1009).
MAX_FRAME_BYTES = env_int("MAX_FRAME_BYTES", 12 * 1024 * 1024, minimum=1024)
MAX_MESSAGE_CHARS = env_int("MAX_MESSAGE_CHARS", 100_000, minimum=100)
MAX_SYSTEM_PROMPT_CHARS = env_int("MAX_SYSTEM_PROMPT_CHARS", 20_000, minimum=100)
MAX_ATTACHMENTS = env_int("MAX_ATTACHMENTS", 8, minimum=0)
MAX_ATTACHMENT_BYTES = env_int("MAX_ATTACHMENT_BYTES", 8 * 1024 * 1024, minimum=1024)
MAX_OUTPUT_TOKENS = env_int("MAX_OUTPUT_TOKENS", 32_000, minimum=1)
# Frames a socket may send: WS_FRAME_BURST at once, then WS_FRAMES_PER_SECOND on average (a token
# bucket, chat/ratelimit.py). The page sends a ping every 25 s and a frame per user action.
WS_FRAMES_PER_SECOND = env_float("WS_FRAMES_PER_SECOND", 5.0, minimum=0.1)
WS_FRAME_BURST = env_int("WS_FRAME_BURST", 20, minimum=1)
# Open sockets per user, all tabs and devices together (one per open chat page).
WS_MAX_SOCKETS_PER_USER = env_int("WS_MAX_SOCKETS_PER_USER", 20, minimum=1)

# --- Budgets and rate limits (docs/usage.md, docs/deploy.md) -----------------------------------
# USD a reply still being written counts against its person's monthly limit until its final write
# records the real cost: two sends at once cannot both take the last cent.
BUDGET_RESERVE_PER_REPLY = env_float("BUDGET_RESERVE_PER_REPLY", 0.02)
# Per person, all tabs, devices and processes together.
SEND_PER_MINUTE = env_int("SEND_PER_MINUTE", 20, minimum=1)
CONCURRENT_REPLIES = env_int("CONCURRENT_REPLIES", 3, minimum=1)

# Every handler redacts secrets (Bearer headers, key-shaped strings) from messages and
# tracebacks: see chat/redaction.py. Django's own loggers get filtered handlers too, replacing
# those of its default configuration.
_REDACT = ["redact_secrets"]
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redact_secrets": {"()": "chat.redaction.RedactSecretsFilter"},
        "require_debug_false": {"()": "django.utils.log.RequireDebugFalse"},
    },
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": _REDACT},
        "mail_admins": {
            "class": "django.utils.log.AdminEmailHandler",
            "level": "ERROR",
            "filters": ["require_debug_false", *_REDACT],
        },
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # Replaces Django's default handlers for its loggers; records still reach the root's.
        "django": {"handlers": ["mail_admins"], "level": "INFO", "propagate": True},
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # httpx logs request lines at INFO; they carry no token, but keep upstream chatter quiet.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        # Every sign-in logs at INFO; failures and lockouts are warnings and stay.
        "axes": {"level": "WARNING"},
    },
}
