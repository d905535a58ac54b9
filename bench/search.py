"""Benchmark: conversation search (chat/search.py) on 10,000 conversations of one user.

For each backend, in a process of its own (Django's settings are per process), a fresh database
is migrated and filled: one user with `--conversations` conversations of `--messages` messages
each (~40 words of a Zipf-distributed vocabulary, so some words are everywhere and some rare),
and a second user with a fifth as many, whose rows the search must skip. Then every query of a
mix (a rare word, a common one, a word of titles, two words, no match) runs `--repeat` times
through chat.search.search, the function behind GET /api/conversations, and p50/p95 are printed.
PostgreSQL databases are dropped afterwards; it is skipped when not reachable.

    .venv/bin/python bench/search.py [--conversations 10000] [--messages 6] [--repeat 20]
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chat.models import User

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_HOST, PG_PORT = "127.0.0.1", 5432
VOCABULARY = 5000
WORDS_PER_MESSAGE = 40
BATCH = 2000


def words(seed: int) -> list[str]:
    """A made-up vocabulary: pronounceable words, the first ones the most frequent (Zipf)."""
    rng = random.Random(seed)
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    made: dict[str, None] = {}
    while len(made) < VOCABULARY:
        made["".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))] = None
    return list(made)


def fill(conversations: int, messages: int, seed: int = 7) -> tuple[User, list[str]]:
    from chat.models import Conversation, Message, User

    vocabulary = words(seed)
    rng = random.Random(seed)
    cumulative = list(accumulate(1 / (rank + 1) for rank in range(len(vocabulary))))

    def text(k: int = WORDS_PER_MESSAGE) -> str:
        return " ".join(rng.choices(vocabulary, cum_weights=cumulative, k=k))

    owner = User.objects.create_user("bench-owner", "", None)
    other = User.objects.create_user("bench-other", "", None)
    for user, count in ((owner, conversations), (other, conversations // 5)):
        for start in range(0, count, BATCH):
            batch = [
                Conversation(
                    owner=user,
                    title=text(4),
                    next_seq=messages + 1,
                )
                for _ in range(min(BATCH, count - start))
            ]
            Conversation.objects.bulk_create(batch)
            Message.objects.bulk_create(
                Message(
                    conversation=conversation,
                    seq=seq,
                    role="user" if seq % 2 else "assistant",
                    content=text(),
                )
                for conversation in batch
                for seq in range(1, messages + 1)
            )
    return owner, vocabulary


def queries(vocabulary: list[str]) -> dict[str, str]:
    return {
        "common word": vocabulary[0],
        "mid word": vocabulary[200],
        "rare word": vocabulary[-1],
        "two words": f"{vocabulary[50]} {vocabulary[51]}",
        "no match": "zzzqqq",
    }


def worker(args: argparse.Namespace) -> None:
    """One backend, in this process: migrate, fill, time. Prints result lines."""
    os.environ["NOBOX_VAR_DIR"] = tempfile.mkdtemp(prefix="noboxweb-bench-search-")
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "noboxweb.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from chat.search import by_message_text, search

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    owner, vocabulary = fill(args.conversations, args.messages)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    print(f"filled in {time.perf_counter() - started:.1f} s", flush=True)
    everything: list[float] = []
    for label, query in queries(vocabulary).items():
        search(owner, query)  # warm the caches once
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            hits = search(owner, query)
            times.append((time.perf_counter() - start) * 1000)
        everything += times
        print(f"  {label:12} {query!r:24} {len(hits):3} hits  {summary(times)}", flush=True)
        if args.explain:
            found = by_message_text(owner, query, "default", connection.vendor == "postgresql")
            print(found[: len(hits) or 30].explain(analyze=connection.vendor == "postgresql"))
    print(f"  {'all':12} {'':24} {'':8}  {summary(everything)}", flush=True)


def summary(times: list[float]) -> str:
    cuts = statistics.quantiles(times, n=20)
    return f"p50 {statistics.median(times):7.1f} ms  p95 {cuts[18]:7.1f} ms"


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def run_backend(name: str, args: argparse.Namespace) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    drop = None
    if name == "postgresql":
        if not reachable(PG_HOST, PG_PORT):
            print(f"\n{name}: skipped (nothing listens on {PG_HOST}:{PG_PORT})")
            return
        database = f"noboxweb_bench_search_{uuid.uuid4().hex[:8]}"
        psql = ["psql", "-q", "-h", PG_HOST, "-U", "postgres", "-c"]
        subprocess.run([*psql, f'CREATE DATABASE "{database}"'], check=True)
        env["DATABASE_URL"] = f"postgres://postgres@{PG_HOST}:{PG_PORT}/{database}"
        drop = [*psql, f'DROP DATABASE "{database}" WITH (FORCE)']
    print(
        f"\n{name}: {args.conversations} conversations x {args.messages} messages "
        f"(+{args.conversations // 5} of another user), {args.repeat} runs per query",
        flush=True,
    )
    try:
        subprocess.run(
            [sys.executable, __file__, "--worker", *sys.argv[1:]], env=env, check=True, cwd=ROOT
        )
    finally:
        if drop is not None:
            subprocess.run(drop, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--explain", action="store_true", help="print each query's plan")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], help="only this one")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    for backend in [args.backend] if args.backend else ["sqlite", "postgresql"]:
        run_backend(backend, args)


if __name__ == "__main__":
    main()
