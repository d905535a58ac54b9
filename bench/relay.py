"""Relay benchmark: what noboxweb adds on top of reading the Nobox stream directly.

Every stream is the simulator's `sim/bench` model: first byte at once, N chunks at R chunks a
second, each chunk stamped with the wall-clock time it left the simulator. At each concurrency
level, in the same run and at the same concurrency:

- direct: bare SSE clients (httpx) read the streams straight from the simulator (the baseline);
- embedded: WebSocket clients send to one daphne on SQLite + the in-memory layer (`make run`);
- production: senders on daphne 1 and, for each conversation, a watcher socket on daphne 2,
  PostgreSQL + Redis (fresh database and key prefix), so every frame a watcher gets crossed Redis.

It prints a table and writes bench/report/<name>.md, .svg (.png with matplotlib) and .json.
Everything talks to 127.0.0.1 only, every wait is bounded, and every process it starts is
stopped at the end. Set NOBOX_BENCH_ROOT to measure another tree (e.g. a worktree of an older
commit); the simulator always comes from this checkout.

    .venv/bin/python bench/relay.py [--quick] [--levels 1,50,100,200] [--with-500]
        [--configs embedded,production] [--chunks 200] [--rate 50] [--name latest]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import report  # noqa: E402
from bench.measure import TOKEN, Level, Shape, measure_direct, measure_relay  # noqa: E402
from bench.stack import (  # noqa: E402
    PG_PORT,
    REDIS_PORT,
    Deployment,
    app_root,
    embedded,
    log_lines,
    production,
    reachable,
    simulator,
)

REPORT_DIR = Path(__file__).resolve().parent / "report"
SETTLE_SECONDS = 1.0  # between measurements, so one's tail does not run into the next
Deploy = Callable[[Path, str, int, str], AbstractContextManager[Deployment]]
CONFIGS: dict[str, Deploy] = {"embedded": embedded, "production": production}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levels", default="1,50,100,200", help="concurrent streams, commas")
    parser.add_argument("--quick", action="store_true", help="levels 1 and 50 only")
    parser.add_argument("--with-500", action="store_true", help="add 500 streams")
    parser.add_argument("--configs", default="embedded,production")
    parser.add_argument("--chunks", type=int, default=200, help="chunks per stream")
    parser.add_argument("--rate", type=float, default=50.0, help="chunks a second per stream")
    parser.add_argument("--grace", type=float, default=60.0, help="s a reply may run late")
    parser.add_argument("--idle", type=float, default=15.0, help="s of socket silence allowed")
    parser.add_argument("--name", default="latest", help="report file name in bench/report/")
    args = parser.parse_args(argv)
    levels = [1, 50] if args.quick else [int(n) for n in args.levels.split(",") if n.strip()]
    args.levels = sorted(set(levels + ([500] if args.with_500 else [])))
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = set(args.configs) - CONFIGS.keys()
    if unknown or not args.levels or args.chunks < 1 or args.rate <= 0:
        parser.error(f"bad --configs {sorted(unknown)}, --levels, --chunks or --rate")
    return args


def raise_file_limit() -> None:
    # two sockets and an HTTP stream per stream in this process, and as many in the servers
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))


async def run_config(
    deployment: Deployment, sim_url: str, sim_pid: int, levels: list[int], shape: Shape
) -> list[Level]:
    results = []
    for streams in levels:
        started = time.monotonic()
        direct = await measure_direct(sim_url, streams, shape)
        await asyncio.sleep(SETTLE_SECONDS)
        level = await measure_relay(deployment, sim_pid, streams, shape, direct)
        results.append(level)
        print(f"  {deployment.name}, {streams} streams: {time.monotonic() - started:.0f} s")
        print(report.text_table([report.row(level)]), flush=True)
        await asyncio.sleep(SETTLE_SECONDS)
    return results


def deployments(args: argparse.Namespace) -> Iterator[str]:
    for name in args.configs:
        if name == "production" and not (reachable(PG_PORT) and reachable(REDIS_PORT)):
            print("skipping production: PostgreSQL or Redis is not on 127.0.0.1", flush=True)
            continue
        yield name


def tree_state(root: Path) -> str:
    """The commit of the tree under test, and whether it has local changes (read-only git)."""

    def git(*args: str) -> str:
        result = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=False
        )
        return result.stdout.strip()

    dirty = (
        # the simulator is the instrument, not the code under test
        " + uncommitted changes"
        if git("status", "--porcelain", "--", "chat", "noboxweb", ":!chat/nobox/simulator.py")
        else ""
    )
    return f"{git('rev-parse', '--short', 'HEAD') or 'unknown'}{dirty}"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    raise_file_limit()
    shape = Shape(args.chunks, args.rate, args.grace, args.idle)
    run_dir = Path(tempfile.mkdtemp(prefix="noboxweb-bench-"))
    began = time.monotonic()
    print(f"logs in {run_dir}; app code from {app_root()}", flush=True)
    levels: list[Level] = []
    context = {"load average at the start": f"{os.getloadavg()[0]:.2f}"}
    with ExitStack() as stack:
        sim_url, sim_pid = stack.enter_context(simulator(run_dir / "simulator.log"))
        for name in deployments(args):
            print(f"{name}: starting", flush=True)
            with CONFIGS[name](run_dir, sim_url, max(args.levels), TOKEN) as deployment:
                context[f"{name}: chat imported from"] = deployment.chat_file
                levels += asyncio.run(run_config(deployment, sim_url, sim_pid, args.levels, shape))
            errors, warnings = log_lines(deployment.logs)
            context[f"{name}: server log"] = f"{errors} error lines, {warnings} warning lines"
    rows = [report.row(level) for level in levels]
    print()
    print(report.text_table(rows))
    for name in dict.fromkeys(r.config for r in rows):
        print(f"{name}: added p99 lag {report.budget_passed(rows, name)}")
    context["wall time"] = f"{time.monotonic() - began:.0f} s"
    write_report(args, shape, levels, rows, context, run_dir)


def write_report(
    args: argparse.Namespace,
    shape: Shape,
    levels: list[Level],
    rows: list[report.Row],
    context: dict[str, str],
    run_dir: Path,
) -> None:
    REPORT_DIR.mkdir(exist_ok=True)
    title = f"noboxweb relay, {shape.chunks} chunks at {shape.rate:g}/s per stream"
    base = REPORT_DIR / args.name
    (base.with_suffix(".svg")).write_text(report.svg_plot(rows, title))
    png = report.png_plot(rows, title, base.with_suffix(".png"))
    command = "NOBOX_BENCH_ROOT=... " if os.environ.get("NOBOX_BENCH_ROOT") else ""
    command += ".venv/bin/python bench/relay.py " + " ".join(sys.argv[1:])
    facts = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": command.strip(),
        "tree under test": f"{app_root()} at {tree_state(app_root())}",
        "machine": f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the end",
        "other processes": "not controlled: the load averages say how busy the machine was",
        **context,
        "raw logs": str(run_dir),
    }
    markdown = render_markdown(title, facts, rows, levels, png, base.name)
    base.with_suffix(".md").write_text(markdown)
    raw = [dataclasses.asdict(r) for r in rows]
    base.with_suffix(".json").write_text(json.dumps({"facts": facts, "rows": raw}, indent=1))
    print(f"\nreport: {base.with_suffix('.md')}")


def render_markdown(
    title: str,
    facts: dict[str, str],
    rows: list[report.Row],
    levels: list[Level],
    png: bool,
    name: str,
) -> str:
    lines = [f"# {title}", ""]
    lines += [f"- {key}: `{value}`" for key, value in facts.items()]
    lines += ["", report.markdown_table(rows), ""]
    for config in dict.fromkeys(r.config for r in rows):
        lines.append(f"- {config}: added p99 lag {report.budget_passed(rows, config)}")
    lines += ["", f"![lag]({name}.{'png' if png else 'svg'})", "", "## Failures", ""]
    for level in levels:
        extra = []
        if level.warm_up_missed_done:
            count = level.warm_up_missed_done
            extra.append(
                f"{count} warm-up replies seen finished by `subscribe`, `done` late or lost"
            )
        shown = ", ".join([*(f"{k} ×{n}" for k, n in level.failures.items()), *extra])
        lines.append(f"- {level.config}, {level.streams} streams: {shown or 'none'}")
    lines += ["", METHOD]
    return "\n".join(lines) + "\n"


METHOD = """## How each number is measured

- **Upstream**: the simulator's `sim/bench` model (`chat/nobox/simulator.py`), one process,
  first byte at once, chunk k due at start + k/rate on an absolute schedule, its text
  `[k=<k> t=<time.time() when sent>] `. One clock serves every process of the machine.
- **Lag** of a chunk: wall-clock arrival of its stamp in the text a client rebuilt (snapshot
  replaces, delta writes at its offset) minus the stamp; p50 and p99 over every chunk of every
  socket at that level. *Direct* is the same streams read with httpx straight from the
  simulator, at the same concurrency, just before. *Added p99* is the worse of noboxweb's
  senders and watchers minus direct.
- **Added TTFT**: p50 (p95) of `send` -> first text in the socket, minus p50 (p95) of request ->
  first content chunk, direct.
- **Chunks lost**: chunk stamps missing from what each socket rebuilt live (senders and
  watchers), against chunks × sockets. **Sockets without whole reply**: the rebuilt text is not
  `done`'s `message.content`, or no `done` came before the deadline (stream length + grace) or
  within `idle` seconds of silence once the reply had started (a slow `ack` is not silence); a
  refused connection, warm-up or `send` counts too.
- **ack p50**: `send` -> `ack`, every socket's `send` fired in the same instant (the sockets are
  opened and given a conversation by a one-chunk warm-up reply first).
- **App CPU / chunk**: utime + stime of the daphne processes (/proc/<pid>/stat) from just before
  the sends to the last `done`, divided by upstream chunks (streams × chunks). In brackets, the
  *direct reader*: the CPU this benchmark's own process spent reading the direct streams (httpx
  and JSON, nothing else running in it), per chunk: what reading alone costs Python here.
- **New DB sessions / reply**: PostgreSQL `pg_stat_database.sessions` of the run's database
  (read from another database) before and 1.5 s after, divided by replies. SQLite: not
  measured.
- **Redis cmds / delta (/ chunk)**: `INFO commandstats` total calls before and after, divided
  by the deltas published (per reply, the delta frames of whichever of its sockets got the most:
  where frames were lost this undercounts, so the ratio is an upper bound) and, in brackets, by
  upstream chunks. Server-wide: anything else using this Redis at the same time counts too.
"""


if __name__ == "__main__":
    main()
