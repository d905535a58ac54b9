"""Browser libraries from npm, served as static files: exactly the files the pages use.

Each npm package ships far more than a page loads (highlight.js alone: an unbundled core and 190
language modules). Only the listed files are found, collected and hashed, so nothing unused is
served and the hashing storage rewrites the imports of our own modules and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.staticfiles.finders import BaseFinder
from django.core.checks import CheckMessage, Error
from django.core.files.storage import FileSystemStorage


class VendorFinder(BaseFinder):
    """Finds `settings.VENDOR_FILES` ({static path: file under node_modules})."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.files: dict[str, Path] = {
            path: settings.NODE_MODULES / source for path, source in settings.VENDOR_FILES.items()
        }

    def check(self, **kwargs: Any) -> list[CheckMessage]:
        return [
            Error(f"{source} is missing: run `npm ci`", id="chat.E001", obj=path)
            for path, source in self.files.items()
            if not source.is_file()
        ]

    def find(self, path: str, find_all: bool = False, **kwargs: Any) -> Any:
        source = self.files.get(path)
        found = str(source) if source is not None and source.is_file() else None
        if find_all or kwargs.get("all"):
            return [found] if found else []
        return found

    def list(self, ignore_patterns: Any) -> Iterator[tuple[str, FileSystemStorage]]:
        for path, source in self.files.items():
            storage = FileSystemStorage(location=source.parent)
            # Collected under its static path: the storage's prefix is the path's folder.
            storage.prefix = str(Path(path).parent)  # type: ignore[attr-defined]
            yield source.name, storage
