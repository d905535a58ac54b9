"""Compiles the translation catalogues (locale/<lang>/LC_MESSAGES/*.po) into the .mo files gettext
reads, with polib: no GNU gettext needed on the machine. The .mo files are build output (not in
git); `make setup` and the test suite's conftest run this, and a deployment runs
`python -m chat.translations` beside collectstatic.

No Django here: it runs before settings can be loaded (from the Makefile)."""

from __future__ import annotations

import sys
from pathlib import Path

import polib

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"


def stale_catalogues(locale_dir: Path = LOCALE_DIR) -> list[Path]:
    """The .po files whose .mo is missing or older than they are."""
    return [
        po
        for po in sorted(locale_dir.glob("*/LC_MESSAGES/*.po"))
        if not po.with_suffix(".mo").exists()
        or po.with_suffix(".mo").stat().st_mtime < po.stat().st_mtime
    ]


def compile_catalogue(po: Path) -> Path:
    """Writes po's .mo. Fuzzy entries stay out, as msgfmt leaves them: a guess is not shipped."""
    mo = po.with_suffix(".mo")
    catalogue = polib.pofile(str(po))
    for entry in catalogue.fuzzy_entries():
        catalogue.remove(entry)
    # Written beside, then renamed: a server reading the catalogue never sees half a file.
    partial = mo.with_suffix(".mo.partial")
    catalogue.save_as_mofile(str(partial))
    partial.replace(mo)
    return mo


def compile_stale(locale_dir: Path = LOCALE_DIR) -> list[Path]:
    return [compile_catalogue(po) for po in stale_catalogues(locale_dir)]


def main() -> int:
    for mo in compile_stale():
        print(f"compiled {mo.relative_to(LOCALE_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
