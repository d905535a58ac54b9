"""A real daphne process (embedded defaults: SQLite, one process) stopped with SIGTERM in the
middle of a reply: the reply is stored `interrupted` with its text and says why."""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

from tests.servers import app_env, app_server, create_user, login, manage, simulator
from tests.stack import PROMPT, ChatClient

# sim/long at this rate is a reply of several seconds: long enough to stop it half-way.
TOKENS_PER_SECOND = 120
REPLY_TOKENS = 60


def stored(var_dir: Path, reply_id: str) -> tuple[str, str, str]:
    with sqlite3.connect(var_dir / "noboxweb.sqlite3") as db:
        row = db.execute(
            "SELECT status, content, error_message FROM chat_message WHERE public_id = ?",
            (reply_id,),
        ).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


async def test_sigterm_mid_reply_keeps_the_text_and_says_the_server_restarted(tmp_path):
    with simulator(tokens_per_second=TOKENS_PER_SECOND, reply_tokens=REPLY_TOKENS) as sim_url:
        env = app_env(tmp_path, NOBOX_BASE_URL=sim_url)
        manage(env, "migrate", "--noinput")
        create_user(env, "alice", "alice-password-123", token="sk-alice-shutdown-0001")
        with app_server(env, log_path=tmp_path / "daphne.log") as (url, proc):
            client = await ChatClient.open("tab", url, login(url, "alice", "alice-password-123"))
            _, reply = await client.send_message(PROMPT, "sim/long")
            await client.wait_until(
                lambda: client.page.deltas.get(reply, 0) >= 5, "five deltas", timeout=15
            )
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
    status, content, why = stored(tmp_path, reply)
    assert status == "interrupted"
    assert content and content.startswith(client.page.texts[reply])
    assert "restarted" in why
