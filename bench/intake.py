"""Micro-benchmark: how long `send`s that arrive together wait to be stored (the `ack` wait),
stored one by one (one transaction each, as before `chat/replies/intake.py`) vs in groups.

Both run in this process on the same database, in alternating rounds, so the ratio holds on a
busy machine even where the absolute figures do not. Each round: `--sends` people each send
once, all at the same instant, to a new chat; the wait of each send is measured from that
instant to its stored turn.

    .venv/bin/python bench/intake.py [--sends 50] [--rounds 5] [--database sqlite|postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

Store = Callable[[object, object], Awaitable[object]]


def configure(database: str) -> Callable[[], object]:
    """Point Django at a fresh database; returns its clean-up."""
    os.environ.setdefault("DEBUG", "1")
    # Each person sends once per round and no reply ever ends here: the per-person limits
    # (chat.rate_limits) would refuse the later rounds, which is not what is measured.
    os.environ["SEND_PER_MINUTE"] = os.environ["CONCURRENT_REPLIES"] = "100000"
    os.environ["NOBOX_VAR_DIR"] = tempfile.mkdtemp(prefix="noboxweb-bench-intake-")
    drop: Callable[[], object] = lambda: None  # noqa: E731
    if database == "postgres":
        name = f"noboxweb_bench_intake_{uuid.uuid4().hex[:8]}"
        psql = ["psql", "-q", "-h", "127.0.0.1", "-U", "postgres", "-c"]
        subprocess.run([*psql, f'CREATE DATABASE "{name}"'], check=True)
        os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{name}"
        drop = lambda: subprocess.run([*psql, f'DROP DATABASE "{name}" WITH (FORCE)'], check=False)  # noqa: E731
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "noboxweb.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return drop


def make_people(count: int) -> list[object]:
    from chat import tokens
    from chat.models import User

    people: list[object] = []
    for i in range(count):
        person = User.objects.create_user(f"p{i:04d}", "", None)
        tokens.store_token(person, "sk-bench-token-0001")
        people.append(person)
    return people


async def round_of(store: Store, people: list[object], tag: str) -> list[float]:
    from chat.incoming_frames import SendRequest

    async def one(person: object, i: int) -> float:
        request = SendRequest(f"{tag}-{i}", None, "hello", "sim/bench")
        await store(person, request)
        return time.perf_counter() - start

    start = time.perf_counter()
    return list(await asyncio.gather(*(one(p, i) for i, p in enumerate(people))))


async def measure(sends: int, rounds: int) -> dict[str, list[float]]:
    from chat.database import in_db_pool
    from chat.replies.intake import Intake
    from chat.replies.turns import store_turn

    people = await in_db_pool(make_people)(sends)
    intake = Intake()
    ways: dict[str, Store] = {
        "one by one": lambda p, r: in_db_pool(store_turn)(p, r),  # type: ignore[arg-type]
        "grouped": intake.store,  # type: ignore[dict-item]
    }
    waits: dict[str, list[float]] = {name: [] for name in ways}
    for n in range(rounds):
        for name, store in ways.items():
            waits[name].extend(await round_of(store, people, f"{name[:3]}{n}"))
    return waits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sends", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    drop = configure(args.database)
    try:
        waits = asyncio.run(measure(args.sends, args.rounds))
    finally:
        drop()
    base = statistics.median(waits["one by one"])
    print(f"{args.sends} sends at once, {args.rounds} rounds, {args.database}")
    for name, values in waits.items():
        p50, p95 = statistics.median(values), statistics.quantiles(values, n=20)[-1]
        print(
            f"  {name:11} wait p50 {p50 * 1000:7.1f} ms  p95 {p95 * 1000:7.1f} ms"
            f"  p50 ratio {p50 / base:.2f}"
        )


if __name__ == "__main__":
    main()
