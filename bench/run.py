"""Relay benchmark: what noboxweb adds on top of reading the Nobox stream directly.

Both sides stream the same reply from the same simulator in the same run:
- baseline: a bare client reading the SSE stream straight from the simulator (httpx);
- noboxweb: a browser-like WebSocket client sending `send` to a daphne process on embedded
  defaults (SQLite, in-memory channel layer) and reading frames until `done`.

Prints medians and ratios (noboxweb / baseline) for time to first token and time to the whole
reply, for one reply at a time and for several at once, plus frames per reply (coalescing).
Ratios, not absolute times, are the result: this machine is shared and noisy.

    .venv/bin/python bench/run.py [--replies 20] [--tokens 2000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.servers import app_env, app_server, create_user, manage, simulator  # noqa: E402

MODEL = "openai/gpt-4o"
TOKEN = "sk-bench-token-0001"


@dataclass
class Sample:
    first: float  # seconds to the first piece of text
    total: float  # seconds to the end of the reply
    frames: int  # text-carrying messages received
    chars: int


async def direct(sim_url: str, prompt: str) -> Sample:
    body = {
        "model": MODEL,
        "stream": True,
        "messages": [{"role": "user", "content": prompt}],
        "stream_options": {"include_usage": True},
    }
    headers = {"Authorization": f"Bearer {TOKEN}"}
    start = time.perf_counter()
    first, frames, chars = 0.0, 0, 0
    async with (
        httpx.AsyncClient(timeout=60) as client,
        client.stream(
            "POST", f"{sim_url}/v1/chat/completions", json=body, headers=headers
        ) as response,
    ):
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choices = json.loads(line[6:]).get("choices") or [{}]
            text = choices[0].get("delta", {}).get("content")
            if text:
                first = first or time.perf_counter() - start
                frames += 1
                chars += len(text)
    return Sample(first, time.perf_counter() - start, frames, chars)


async def relayed(app_url: str, cookie: str, prompt: str) -> Sample:
    ws_url = app_url.replace("http://", "ws://") + "/ws/chat/"
    headers = {"Cookie": cookie, "Origin": app_url}
    async with connect(ws_url, additional_headers=headers, max_size=None) as ws:
        await ws.recv()  # hello
        start = time.perf_counter()
        await ws.send(
            json.dumps(
                {
                    "type": "send",
                    "client_id": uuid.uuid4().hex,
                    "conversation": None,
                    "text": prompt,
                    "model": MODEL,
                }
            )
        )
        first, frames, chars = 0.0, 0, 0
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == "delta":
                first = first or time.perf_counter() - start
                frames += 1
                chars += len(frame["text"])
            elif frame["type"] == "done":
                if frame["message"]["status"] != "complete":
                    raise RuntimeError(f"reply ended {frame['message']['status']}")
                return Sample(first, time.perf_counter() - start, frames, chars)
            elif frame["type"] == "error":
                raise RuntimeError(frame)


async def measure(label: str, make, replies: int, concurrency: int) -> list[Sample]:  # type: ignore[no-untyped-def]
    await make("warm-up")
    samples: list[Sample] = []
    for batch in range(0, replies, concurrency):
        size = min(concurrency, replies - batch)
        samples += await asyncio.gather(*(make(f"bench {batch + i:03d}") for i in range(size)))
    return samples


def median(samples: list[Sample], field: str) -> float:
    return statistics.median(getattr(s, field) for s in samples)


def report(title: str, base: list[Sample], app: list[Sample]) -> None:
    print(f"\n{title}")
    print(f"  {'':22}{'baseline':>12}{'noboxweb':>12}{'ratio':>8}")
    for field, name in (("first", "time to first token"), ("total", "time to whole reply")):
        b, a = median(base, field) * 1000, median(app, field) * 1000
        print(f"  {name:22}{b:10.1f}ms{a:10.1f}ms{a / b:8.2f}")
    print(f"  {'frames per reply':22}{median(base, 'frames'):12.0f}{median(app, 'frames'):12.0f}")
    print(f"  {'characters per reply':22}{median(base, 'chars'):12.0f}{median(app, 'chars'):12.0f}")


async def run(args: argparse.Namespace, sim_url: str, app_url: str, cookie: str) -> None:
    def bare(prompt: str):  # type: ignore[no-untyped-def]
        return direct(sim_url, prompt)

    def app(prompt: str):  # type: ignore[no-untyped-def]
        return relayed(app_url, cookie, prompt)

    for concurrency in sorted({1, args.concurrency}):
        base = await measure("bare", bare, args.replies, concurrency)
        relay = await measure("app", app, args.replies, concurrency)
        report(
            f"{args.replies} replies of {args.tokens} tokens, {concurrency} at a time", base, relay
        )


def session_for(env: dict[str, str], username: str) -> str:
    """A signed-in session made directly (DEBUG is off, so no static pages are rendered)."""
    code = (
        "from django.contrib.auth import SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY;"
        "from django.contrib.sessions.backends.db import SessionStore;"
        "from chat.models import User;"
        f"u = User.objects.get(username={username!r}); s = SessionStore();"
        "s[SESSION_KEY] = str(u.pk);"
        "s[BACKEND_SESSION_KEY] = 'django.contrib.auth.backends.ModelBackend';"
        "s[HASH_SESSION_KEY] = u.get_session_auth_hash(); s.save(); print(s.session_key)"
    )
    return manage(env, "shell", "-c", code).strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replies", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    var_dir = Path(tempfile.mkdtemp(prefix="noboxweb-bench-"))
    with simulator(tokens_per_second=0, reply_tokens=args.tokens) as sim_url:
        env = app_env(var_dir, NOBOX_BASE_URL=sim_url, DEBUG="0", LOG_LEVEL="WARNING")
        manage(env, "migrate", "--noinput")
        create_user(env, "bench", "bench-password-1", token=TOKEN)
        cookie = f"sessionid={session_for(env, 'bench')}"
        with app_server(env) as (app_url, _):
            asyncio.run(run(args, sim_url, app_url, cookie))


if __name__ == "__main__":
    main()
