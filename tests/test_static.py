"""Static files as production collects them: hashed names everywhere, ES module imports too,
and nothing from npm but the files the pages use."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings
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
    [highlight] = out.glob("chat/highlight.*.js")
    sources = chat.read_text() + render.read_text() + highlight.read_text()
    imports = re.findall(r'from\s*"([^"]+)"|import\("([^"]+)"\)', sources)
    imports = [static or dynamic for static, dynamic in imports]
    assert any("katex" in name for name in imports), "the lazy KaTeX import was not found"
    assert any("highlight" in name for name in imports), "the lazy highlight.js import is missing"
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
    grammars = [f"highlight/es/languages/{name}.min.js" for name in settings.HIGHLIGHT_GRAMMARS]
    assert vendor == sorted(
        [
            "chart.js/chart.umd.min.js",
            "chart.js/chart.umd.min.js.map",
            "dompurify/purify.es.mjs",
            "highlight/es/core.min.js",
            *grammars,
            "highlight/styles/github-dark.min.css",
            "highlight/styles/github.min.css",
            "katex/katex.mjs",
            "marked/marked.esm.js",
            "marked/marked.esm.js.map",
        ]
    )


def test_highlight_js_loads_exactly_the_grammars_that_are_collected():
    module = (ROOT / "static/chat/highlight.js").read_text()
    imported = re.findall(
        r'import\("\.\./vendor/highlight/es/languages/([\w-]+)\.min\.js"\)', module
    )
    keys = re.findall(r"^  ([\w-]+): \(\) => import", module, re.MULTILINE)
    assert imported == keys == sorted(settings.HIGHLIGHT_GRAMMARS)


STATIC_IMPORT = re.compile(
    r'^\s*(?:import|export)\b[^;]*?\bfrom\s*"([^"]+)"', re.MULTILINE | re.DOTALL
)


def static_import_graph(entry: Path) -> set[str]:
    """Every module `entry` loads before it runs (static imports, followed), as static paths."""
    static_root = ROOT / "static"
    vendor = {f"vendor/{name}" for name in ("marked/marked.esm.js", "dompurify/purify.es.mjs")}
    found: set[str] = set()
    todo = [entry]
    while todo:
        module = todo.pop()
        for name in STATIC_IMPORT.findall(module.read_text()):
            path = (module.parent / name).resolve()
            relative = path.relative_to(static_root.resolve()).as_posix()
            if relative in found:
                continue
            found.add(relative)
            # npm files live under node_modules, and import nothing of ours
            if not relative.startswith("vendor/"):
                todo.append(path)
            else:
                assert relative in vendor, relative
    return found


def test_the_chat_page_preloads_every_module_chat_js_imports():
    template = (ROOT / "templates/chat/chat.html").read_text()
    preloaded = set(re.findall(r"""rel="modulepreload" href="{% static '([^']+)' %}\"""", template))
    graph = static_import_graph(ROOT / "static/chat/chat.js")
    assert "vendor/marked/marked.esm.js" in graph
    # highlight.js and KaTeX are imported when a message first needs them (render.js).
    assert not any(name.startswith(("vendor/highlight", "vendor/katex")) for name in graph)
    assert preloaded == graph
