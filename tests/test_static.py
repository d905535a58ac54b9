"""Static files as production collects them: hashed names everywhere, ES module imports too,
and nothing from npm but the files the pages use."""

from __future__ import annotations

import re
from pathlib import Path

from django.core.management import call_command
from django.test import override_settings

from tests.servers import ROOT

PRODUCTION_STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "chat.static_storage.HashedModuleStorage"},
}


def collect(tmp_path: Path) -> Path:
    with override_settings(STORAGES=PRODUCTION_STORAGES, STATIC_ROOT=tmp_path):
        call_command("collectstatic", "--noinput", verbosity=0)
    return tmp_path


def test_every_module_import_names_a_hashed_file(tmp_path):
    out = collect(tmp_path)
    [chat] = out.glob("chat/chat.*.js")
    [render] = out.glob("chat/render.*.js")
    imports = re.findall(
        r'from\s*"([^"]+)"|import\("([^"]+)"\)', chat.read_text() + render.read_text()
    )
    imports = [static or dynamic for static, dynamic in imports]
    assert any("katex" in name for name in imports), "the lazy KaTeX import was not found"
    assert "./socket.js" in (ROOT / "static/chat/chat.js").read_text()
    assert imports, "no imports found"
    for name in imports:
        assert re.search(r"\.[0-9a-f]{12}\.m?js$", name), f"{name} is not a hashed name"


def test_only_the_npm_files_pages_use_are_collected(tmp_path):
    out = collect(tmp_path)
    vendor = sorted(
        str(p.relative_to(out / "vendor"))
        for p in (out / "vendor").rglob("*")
        if p.is_file() and not re.search(r"\.[0-9a-f]{12}\.", p.name) and p.suffix != ".gz"
    )
    assert vendor == [
        "chart.js/chart.umd.min.js",
        "chart.js/chart.umd.min.js.map",
        "dompurify/purify.es.mjs",
        "highlight/es/highlight.min.js",
        "highlight/styles/github-dark.min.css",
        "highlight/styles/github.min.css",
        "katex/katex.mjs",
        "marked/marked.esm.js",
        "marked/marked.esm.js.map",
    ]
