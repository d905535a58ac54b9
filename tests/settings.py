"""Settings for the test suite: production settings (DEBUG off) with fixed test secrets."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz")
# A fixed key for tests only; production keys come from the environment.
os.environ.setdefault("NOBOX_TOKEN_KEYS", "vsTuC9ev89r7R6sVdEW4xjpQTt3yOBhC7WtGgofFudM=")
# Nothing listens on port 9: a test that forgets to point at the simulator fails fast, and no test
# can ever reach the real Nobox.
os.environ.setdefault("NOBOX_BASE_URL", "http://127.0.0.1:9/_f_")
os.environ.setdefault("NOBOX_VAR_DIR", tempfile.mkdtemp(prefix="noboxweb-test-"))
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")

from noboxweb.settings import *  # noqa: E402, F403

STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
WHITENOISE_USE_FINDERS = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
REPLY_FLUSH_INTERVAL = 0.01
# WhiteNoise serves from the finders in tests; an empty STATIC_ROOT keeps it from warning.
STATIC_ROOT = VAR_DIR / "static"  # noqa: F405
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# The test database is a file, like the embedded default, not SQLite's shared-cache memory
# database: there a reader and a writer on two threads collide on table locks ("database table
# is locked") that a real deployment never sees, since WAL lets readers run beside the writer.
DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}  # noqa: F405
# No title call after first replies (tests count upstream calls); tests/test_titles.py turns
# it on.
TITLE_MODEL = "off"
