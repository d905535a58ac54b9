"""Static files in production: hashed names for every file, ES module imports included.

Without import aggregation, chat.js loads by its hashed name but imports `./socket.js` by its
plain name, which WhiteNoise caches for only 60 s: right after a deploy a browser could mix old
and new modules. With it, every import names the hashed file, which is cached forever.
"""

from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage


class HashedModuleStorage(CompressedManifestStaticFilesStorage):  # type: ignore[misc]
    support_js_module_import_aggregation = True
