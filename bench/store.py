"""Micro-benchmark: what storing one `send` costs (`turns.store_turn` into a chat holding one turn)
against the same statements replayed straight on the database connection, in the same run.

The ratio is the price of building the statements in Python (the ORM, the checks around them):
the part of a send's wait that is ours rather than the database's. Each round stores one turn,
times it, replays the statements it made (in a transaction that is rolled back), then removes
the turn so that every round starts from the same chat.

    .venv/bin/python bench/store.py [--rounds 200] [--database sqlite|postgres] [--history N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.intake import configure, make_people  # noqa: E402
from bench.stack import SECRET_KEY, TOKEN_KEY  # noqa: E402

Statement = tuple[str, Any, bool]  # sql, params, executemany
TRANSACTION_CONTROL = {"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--history", type=int, default=0, help="messages the person wrote before, in other chats"
    )
    args = parser.parse_args()
    # As production runs: with DEBUG on, Django would also log every statement it makes.
    os.environ.update(DEBUG="0", SECRET_KEY=SECRET_KEY, NOBOX_TOKEN_KEYS=TOKEN_KEY)
    drop = configure(args.database)
    try:
        stored, replayed, statements = measure(args.rounds, args.history)
    finally:
        drop()
    p50, raw = statistics.median(stored), statistics.median(replayed)
    print(
        f"store_turn into a chat of one turn, {args.rounds} rounds, {args.database}, "
        f"{args.history} earlier messages"
    )
    print(f"  store_turn            p50 {p50 * 1000:6.2f} ms  ({statements} statements + commit)")
    print(f"  statements replayed   p50 {raw * 1000:6.2f} ms")
    print(f"  ratio                 {p50 / raw:6.1f}x")


def measure(rounds: int, history: int) -> tuple[list[float], list[float], int]:
    from django.db import connection, transaction

    from chat.incoming_frames import SendRequest
    from chat.models import Conversation, Message, User
    from chat.replies.turns import store_turn

    person = cast(User, make_people(1)[0])
    write_history(person, history)
    first = store_turn(person, SendRequest("first", None, "hello", "sim/bench"))
    Message.objects.filter(pk=first.reply.pk).update(status=Message.Status.COMPLETE)
    chat = Conversation.objects.filter(pk=first.conversation.pk)
    before = chat.values("next_seq", "leaf_seq", "updated_at").get()
    stored: list[float] = []
    replayed: list[float] = []
    made: list[Statement] = []

    def record(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if sql.split(None, 1)[0].upper() not in TRANSACTION_CONTROL:  # replayed in atomic()
            made.append((sql, params, many))
        return execute(sql, params, many, context)

    for n in range(rounds):
        made.clear()
        request = SendRequest(f"round-{n}", first.conversation.public_id, "hello", "sim/bench")
        started = time.perf_counter()
        with connection.execute_wrapper(record):
            turn = store_turn(person, request)
        stored.append(time.perf_counter() - started)
        Message.objects.filter(pk__in=[turn.user_message.pk, turn.reply.pk]).delete()
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            for sql, params, many in made:
                (cursor.executemany if many else cursor.execute)(sql, params)
            transaction.set_rollback(True)
        replayed.append(time.perf_counter() - started)
        chat.update(**before)
    return stored, replayed, len(made)


def write_history(person: Any, count: int) -> None:
    """`count` finished messages by `person`, one a minute back from an hour ago, in one chat."""
    from datetime import timedelta

    from django.utils import timezone

    from chat.models import Conversation, Message

    if not count:
        return
    chat = Conversation.objects.create(owner=person, title="history", next_seq=count + 1)
    start = timezone.now() - timedelta(hours=1)
    Message.objects.bulk_create(
        Message(
            conversation=chat,
            seq=seq,
            parent_seq=seq - 1,
            role=Message.Role.USER,
            author=person,
            content="earlier",
            status=Message.Status.COMPLETE,
            created_at=start - timedelta(minutes=seq),
        )
        for seq in range(1, count + 1)
    )


if __name__ == "__main__":
    main()
