"""Benchmark: the chat page of a long conversation, against issue 11's targets.

One user with a conversation of `--messages` messages (1,000; chat-like text: short questions,
markdown answers of a few paragraphs, some with code) and, as the baseline measured in the same
run, a conversation of none; plus `--sidebar` other conversations for the sidebar. The app runs
as production does: DEBUG off, `collectstatic` (hashed, compressed static files served by
WhiteNoise) into the checkout's `staticfiles/`, `python -m noboxweb.serve` (daphne), SQLite in a
throwaway directory, the Nobox simulator upstream. For each page:

- **composer usable**: navigation start -> `performance.mark("composer-ready")`, which chat.js
  sets once the composer is wired and focused and the messages are on screen; Chromium, a fresh
  context (cold cache) per run, `--runs` runs, p50, best and worst; and the renderer's
  main-thread task time up to the mark (CDP `Performance.getMetrics` TaskDuration: wall time
  inside tasks, so a busy machine inflates it too, but not the waits for the network) and the
  CPU time the page's renderer processes used up to it (CDP `SystemInfo.getProcessInfo`, all
  threads: what the page costs, whatever else the machine runs);
- **transferred**: the sum of Resource Timing `transferSize` (bytes on the wire, headers
  included, compressed as the browser asked: `Accept-Encoding: gzip, deflate, br, zstd`) of the
  HTML, JS and CSS the page loads, from the first run; the page's API calls apart;
- **queries**: SQL queries of one GET of the page, counted with CaptureQueriesContext through
  Django's test client in a separate process (the browser's later API calls are not the page);
- **server**: p50 / p95 of `--requests` sequential GETs of the page over HTTP (httpx,
  `Accept-Encoding: gzip`), request sent -> body read; and the daphne process's CPU time per
  GET (user + system, /proc), which a busy machine inflates less than wall time.

    .venv/bin/python bench/page.py [--messages 1000] [--runs 10] [--requests 50] [--report PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import CDPSession

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.report import percentile  # noqa: E402
from bench.stack import app_env, app_server, cpu_seconds, manage, simulator  # noqa: E402

TOKEN = "sim-bench-page-token"
SEED = 11
# Issue 11's targets for a long conversation's page.
TARGET_COMPOSER_MS = 500
TARGET_KB = 150
TARGET_QUERIES = 6
TARGET_SERVER_P95_MS = 100
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DEFAULT_REPORT = ROOT / "bench" / "report" / "page.md"
WARM_UPS = 2


# --- the data (in the worker process) ----------------------------------------------------------


class Writer:
    """Chat-like text from a made-up vocabulary, Zipf-distributed, seeded: the same every run."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
        made: dict[str, None] = {}
        while len(made) < 3000:
            made["".join(self.rng.choice(syllables) for _ in range(self.rng.randint(1, 4)))] = None
        self.vocabulary = list(made)
        self.weights = list(accumulate(1 / (rank + 1) for rank in range(len(self.vocabulary))))

    def words(self, count: int) -> str:
        return " ".join(self.rng.choices(self.vocabulary, cum_weights=self.weights, k=count))

    def sentence(self) -> str:
        return self.words(self.rng.randint(6, 18)).capitalize() + "."

    def paragraph(self) -> str:
        return " ".join(self.sentence() for _ in range(self.rng.randint(2, 5)))

    def question(self) -> str:
        return " ".join(self.sentence() for _ in range(self.rng.randint(1, 3)))

    def answer(self) -> str:
        """A few paragraphs of markdown; some answers have a list, some a code block."""
        parts = [self.paragraph() for _ in range(self.rng.randint(1, 3))]
        if self.rng.random() < 0.3:
            parts.append("\n".join(f"- **{self.words(2)}**: {self.sentence()}" for _ in range(4)))
        if self.rng.random() < 0.3:
            lines = [f"    {self.words(1)} = {self.words(1)}({self.words(2).replace(' ', ', ')})"]
            lines *= self.rng.randint(3, 10)
            parts.append("```python\ndef {}():\n{}\n```".format(self.words(1), "\n".join(lines)))
        parts.append(self.paragraph())
        return "\n\n".join(parts)


def fill(messages: int, sidebar: int) -> dict[str, str]:
    """The user, their token and session, the long and the empty conversation."""
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY

    from chat import tokens
    from chat.models import Conversation, Message, User

    user = User.objects.create_user("bench-page", "", None)
    tokens.store_token(user, TOKEN)
    writer = Writer(SEED)
    Conversation.objects.bulk_create(
        Conversation(owner=user, title=writer.words(4)) for _ in range(sidebar)
    )
    empty = Conversation.objects.create(owner=user, title="empty", model="sim/echo")
    long = Conversation.objects.create(
        owner=user, title="long", model="sim/echo", next_seq=messages + 1
    )
    Message.objects.bulk_create(
        (
            Message(conversation=long, seq=seq, role="user", content=writer.question())
            if seq % 2
            else Message(
                conversation=long,
                seq=seq,
                role="assistant",
                content=writer.answer(),
                model="sim/echo",
                prompt_tokens=900,
                completion_tokens=300,
                total_tokens=1200,
            )
            for seq in range(1, messages + 1)
        ),
        batch_size=500,
    )
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.save()
    assert store.session_key is not None
    return {"session": store.session_key, "long": long.public_id, "empty": empty.public_id}


def count_queries(session: str, path: str) -> list[str]:
    """The SQL of one GET of `path` (after one GET to warm Django's caches)."""
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="127.0.0.1")
    client.cookies[settings.SESSION_COOKIE_NAME] = session
    assert client.get(path).status_code == 200
    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    return [query["sql"] for query in captured.captured_queries]


def worker(args: argparse.Namespace) -> None:
    """In the app's environment: fill the database, count the pages' queries; prints JSON."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "noboxweb.settings")
    import django

    django.setup()
    made = fill(args.messages, args.sidebar)
    made_queries = {
        name: count_queries(made["session"], f"/c/{made[name]}/") for name in ("empty", "long")
    }
    print(json.dumps({**made, "queries": made_queries}))


# --- the measurements (in this process) --------------------------------------------------------


@dataclass
class PageFigures:
    name: str
    path: str
    queries: list[str]
    server_ms: list[float]
    server_cpu_ms: float  # daphne's CPU time per GET
    html_bytes: int  # the HTML as sent (compressed), one GET
    html_raw_bytes: int
    browser: BrowserFigures

    @property
    def page_bytes(self) -> int:
        return sum(v for k, v in self.browser.kinds.items() if k != "api")


def time_gets(url: str, session: str, requests: int) -> tuple[list[float], int, int]:
    """Sequential GETs (after two warm-ups): milliseconds each, and the HTML's size as sent and
    uncompressed."""
    import httpx

    cookies = {"sessionid": session}
    headers = {"Accept-Encoding": "gzip"}
    times = []
    with httpx.Client(cookies=cookies, headers=headers, timeout=30) as client:
        for _ in range(WARM_UPS):
            client.get(url).raise_for_status()
        for _ in range(requests):
            start = time.perf_counter()
            response = client.get(url)
            response.read()
            times.append((time.perf_counter() - start) * 1000)
            response.raise_for_status()
        sent = int(response.headers.get("content-length") or len(response.content))
    return times, sent, len(response.content)


# Resource Timing: bytes on the wire per resource (the navigation is the HTML), and the mark.
READ_TIMINGS = """() => {
  const kinds = {};
  const add = (kind, bytes) => { kinds[kind] = (kinds[kind] || 0) + bytes; };
  for (const entry of performance.getEntriesByType("navigation")) add("html", entry.transferSize);
  for (const entry of performance.getEntriesByType("resource")) {
    const path = new URL(entry.name).pathname;
    const kind = !path.startsWith("/static/") ? "api"
      : /\\.m?js$/.test(path) ? "js" : path.endsWith(".css") ? "css" : "other static";
    add(kind, entry.transferSize);
  }
  const [ready] = performance.getEntriesByName("composer-ready");
  return { kinds, ready: ready ? ready.startTime : null };
}"""


@dataclass
class BrowserFigures:
    composer_ms: list[float] = field(default_factory=list)
    busy_ms: list[float] = field(default_factory=list)  # main-thread task time until ready
    cpu_ms: list[float] = field(default_factory=list)  # renderer CPU time until ready
    kinds: dict[str, int] = field(default_factory=dict)  # bytes of the first load by kind


def renderer_cpu(system: CDPSession) -> dict[int, float]:
    """CPU seconds each renderer process has used since it started (all its threads)."""
    processes = system.send("SystemInfo.getProcessInfo")["processInfo"]
    return {p["id"]: float(p["cpuTime"]) for p in processes if p["type"] == "renderer"}


def measure_in_browser(
    url: str, session: str, paths: dict[str, str], runs: int
) -> dict[str, BrowserFigures]:
    """Per page, `runs` cold loads (the pages alternating): composer-ready times, the renderer's
    main-thread task time up to then, and the bytes of the first load by kind."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("chromium is not installed (apt-get install chromium)")
    found = {name: BrowserFigures() for name in paths}
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        system = browser.new_browser_cdp_session()
        for _ in range(runs):
            for name, path in paths.items():
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                context.add_cookies([{"name": "sessionid", "value": session, "url": url}])
                page = context.new_page()
                cdp = context.new_cdp_session(page)
                cdp.send("Performance.enable")
                cpu_before = renderer_cpu(system)
                page.goto(url + path)
                page.wait_for_function(
                    "() => performance.getEntriesByName('composer-ready').length > 0"
                )
                cpu_after = renderer_cpu(system)
                metrics = {
                    m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]
                }
                page.wait_for_load_state("networkidle")
                timings = page.evaluate(READ_TIMINGS)
                context.close()
                figures = found[name]
                figures.composer_ms.append(float(timings["ready"]))
                figures.busy_ms.append(float(metrics["TaskDuration"]) * 1000)
                figures.cpu_ms.append(
                    sum(cpu - cpu_before.get(pid, 0.0) for pid, cpu in cpu_after.items()) * 1000
                )
                if not figures.kinds:
                    figures.kinds.update({k: int(v) for k, v in timings["kinds"].items()})
        browser.close()
    return found


def run(args: argparse.Namespace) -> tuple[list[PageFigures], dict[str, str]]:
    run_dir = Path(tempfile.mkdtemp(prefix="noboxweb-bench-page-"))
    notes = {"raw logs": str(run_dir)}
    with simulator(run_dir / "simulator.log") as (sim_url, _sim_pid):
        env = app_env(run_dir / "var", sim_url, SECURE_COOKIES="0")
        manage(env, "migrate", "--noinput")
        manage(env, "collectstatic", "--noinput", "--clear")
        started = time.perf_counter()
        out = subprocess.run(
            [sys.executable, __file__, "--worker", *sys.argv[1:]],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        made = json.loads(out.strip().splitlines()[-1])
        notes["fill and query count"] = f"{time.perf_counter() - started:.1f} s"
        paths = {"empty (baseline)": f"/c/{made['empty']}/", "long": f"/c/{made['long']}/"}
        with app_server(env, run_dir / "daphne.log") as (url, pid):
            served, cpu = {}, {}
            for name, path in paths.items():
                before = cpu_seconds([pid])
                served[name] = time_gets(url + path, made["session"], args.requests)
                cpu[name] = (cpu_seconds([pid]) - before) * 1000 / (args.requests + WARM_UPS)
            browser = measure_in_browser(url, made["session"], paths, args.runs)
    figures = [
        PageFigures(
            name=name,
            path=path,
            queries=made["queries"]["empty" if name.startswith("empty") else "long"],
            server_ms=served[name][0],
            server_cpu_ms=cpu[name],
            html_bytes=served[name][1],
            html_raw_bytes=served[name][2],
            browser=browser[name],
        )
        for name, path in paths.items()
    ]
    return figures, notes


# --- the report ---------------------------------------------------------------------------------


def ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} ms"


def kb(value: float) -> str:
    return f"{value / 1024:.1f} KB"


def verdict(value: float | None, target: float | None) -> str:
    if value is None or target is None:
        return "—"
    return "met" if value <= target else "**missed**"


def figures_of(f: PageFigures) -> list[tuple[str, float | None]]:
    """(shown, value compared) for each row of the table, in its order."""
    composer = statistics.median(f.browser.composer_ms)
    busy = statistics.median(f.browser.busy_ms)
    cpu = statistics.median(f.browser.cpu_ms)
    p95 = percentile(f.server_ms, 95)
    return [
        (
            f"{ms(composer)} ({ms(min(f.browser.composer_ms))}–{ms(max(f.browser.composer_ms))})",
            composer,
        ),
        (ms(busy), busy),
        (ms(cpu), cpu),
        (kb(f.page_bytes), f.page_bytes / 1024),
        (str(len(f.queries)), len(f.queries)),
        (f"{ms(p95)} ({ms(statistics.median(f.server_ms))})", p95),
        (ms(f.server_cpu_ms), f.server_cpu_ms),
    ]


def table(figures: list[PageFigures]) -> list[str]:
    base, long = figures[0], figures[-1]
    rows: list[tuple[str, str, float | None]] = [
        (
            f"composer usable, p50 (best–worst of {len(long.browser.composer_ms)})",
            f"≤ {TARGET_COMPOSER_MS} ms",
            TARGET_COMPOSER_MS,
        ),
        ("main-thread task time until then, p50", "", None),
        ("renderer CPU time until then, p50", "", None),
        ("transferred: HTML + JS + CSS (+ icons)", f"≤ {TARGET_KB} KB", TARGET_KB),
        ("SQL queries", f"≤ {TARGET_QUERIES}", TARGET_QUERIES),
        ("server p95 (p50)", f"≤ {TARGET_SERVER_P95_MS} ms", TARGET_SERVER_P95_MS),
        ("server CPU per GET", "", None),
    ]
    lines = [
        f"| figure | {base.name} | {long.name} | long / baseline | target | long |",
        "|---|---|---|---|---|---|",
    ]
    for (label, target_text, target), (base_text, base_value), (long_text, long_value) in zip(
        rows, figures_of(base), figures_of(long), strict=True
    ):
        ratio = f"{long_value / base_value:.2f}x" if base_value and long_value else "—"
        lines.append(
            f"| {label} | {base_text} | {long_text} | {ratio} "
            f"| {target_text} | {verdict(long_value, target)} |"
        )
    return lines


def details(figures: list[PageFigures]) -> list[str]:
    kinds = ["HTML as sent (raw)", "JS", "CSS", "other static", "API"]
    lines = ["| page | " + " | ".join(kinds) + " |"]
    lines.append("|---|---|---|---|---|---|")
    for f in figures:
        t = f.browser.kinds
        cells = [
            f"{kb(f.html_bytes)} ({kb(f.html_raw_bytes)})",
            *(kb(t.get(kind, 0)) for kind in ("js", "css", "other static", "api")),
        ]
        lines.append(f"| {f.name} | " + " | ".join(cells) + " |")
    return lines


def report(args: argparse.Namespace, figures: list[PageFigures], notes: dict[str, str]) -> str:
    head = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"], capture_output=True, text=True
    ).stdout.strip()
    load = os.getloadavg()
    facts = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "`" + " ".join([".venv/bin/python", "bench/page.py", *sys.argv[1:]]) + "`",
        "tree": f"{ROOT} at {head}",
        "machine": f"{os.cpu_count()} cores, {platform.machine()}, load average {load[0]:.2f}",
        "data": f"{args.messages} messages in the long conversation, {args.sidebar} others "
        f"in the sidebar, runs {args.runs}, GETs {args.requests}",
        **notes,
    }
    out = [f"# The chat page of a {args.messages}-message conversation", ""]
    out += [f"- {key}: {value}" for key, value in facts.items()]
    out += ["", *table(figures), "", "Bytes by kind (first cold load):", "", *details(figures)]
    out += ["", "Queries of the long page:", ""]
    out += [f"{i}. `{sql[:160]}`" for i, sql in enumerate(figures[-1].queries, 1)]
    method = (__doc__ or "").split("\n\n")[1:-1]
    out += ["", "## How each number is measured", "", "\n\n".join(method)]
    return "\n".join(out) + "\n"


NOTES_MARKER = "<!-- notes: kept when the report is written again -->"


def kept_notes(path: Path) -> str:
    """The hand-written part of an earlier report (after NOTES_MARKER), to write back."""
    if not path.exists():
        return ""
    _, marker, notes = path.read_text().partition(NOTES_MARKER)
    return f"\n{marker}{notes}" if marker else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--sidebar", type=int, default=50, help="other conversations")
    parser.add_argument("--runs", type=int, default=10, help="cold loads per page")
    parser.add_argument("--requests", type=int, default=50, help="timed GETs per page")
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT)
    parser.add_argument("--no-report", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    figures, notes = run(args)
    text = report(args, figures, notes)
    print(text)
    if not args.no_report:
        args.report.write_text(text + kept_notes(args.report))
        print(f"written: {args.report}")


if __name__ == "__main__":
    main()
