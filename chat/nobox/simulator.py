"""The Nobox simulator: a small ASGI app that speaks the Nobox API well enough for the official
`openai` SDK, our client, the tests, the benchmarks and offline demos.

Run it with `python -m chat.nobox.simulator` (or `daphne chat.nobox.simulator:app`) and point a
client at `http://127.0.0.1:8808/_f_`. Behaviour is chosen by the token and the model id:

- tokens: missing or `invalid...` -> 401, `ratelimited...` -> 429, `broke...` -> 400
  insufficient_funds on completions; anything else is accepted;
- models: see `MODELS`; the `sim/...` ones script faults (slow first byte, stall, cut, ...);
  `sim/bench` is the benchmark's upstream (see `bench_piece`).

Per-request headers `X-Sim-Tokens-Per-Second` and `X-Sim-Reply-Tokens` override the config.
For `sim/bench`, `chunks=N` and `rate=R` in the last user message override both: a relay in
between forwards the prompt but not our headers, so that is how a benchmark sets each stream.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import sys
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

from noboxweb.environ import env_number

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = Sequence[tuple[bytes, bytes]]

PREFIX = "/_f_"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8808
FAULT_AFTER_DELTAS = 3  # mid-stream faults strike after this many content deltas
SLOW_FIRST_BYTE_SECONDS = 3.0
STALL_SECONDS = 120.0
MAX_REPLY_TOKENS = 100_000  # keeps a typo in X-Sim-Reply-Tokens from eating the memory
ROLES = frozenset({"system", "user", "assistant"})
# the string fields an image or audio content part carries, in an object named like its type
PART_FIELDS = {"image_url": ("url",), "input_audio": ("data", "format")}

N = TypeVar("N", int, float)


@dataclass(frozen=True)
class SimConfig:
    tokens_per_second: float = 50.0  # 0 = as fast as possible
    reply_tokens: int = 120
    first_byte_delay: float = 0.0  # seconds before the response headers of every completion
    stats: dict[str, int] = field(
        default_factory=lambda: {"chat_completions": 0, "models": 0}, compare=False, repr=False
    )
    # The latest chat completion request bodies, as received: tests check what was sent.
    requests: deque[bytes] = field(
        default_factory=lambda: deque(maxlen=RECENT_REQUESTS), compare=False, repr=False
    )


class Script(Enum):
    """What a model does besides answering."""

    NORMAL = "normal"
    ECHO = "echo"
    MARKDOWN = "markdown"
    LONG = "long"
    SLOW_FIRST_BYTE = "slow-first-byte"
    STALL = "stall"
    CUT = "cut"
    ERROR_MID_STREAM = "error-mid-stream"
    SERVER_ERROR = "server-error"
    HTML_ERROR = "html-error"
    BENCH = "bench"


MID_STREAM_FAULTS = frozenset({Script.STALL, Script.CUT, Script.ERROR_MID_STREAM})


@dataclass(frozen=True)
class Model:
    id: str
    name: str
    prompt_price: str | None = "0"  # USD per token, as a string like upstream; None: no pricing
    completion_price: str | None = "0"
    public_id: str | None = None  # None: same as id
    context_length: int | None = 128_000  # None: not said
    script: Script = Script.NORMAL

    def as_json(self) -> dict[str, Any]:
        listed: dict[str, Any] = {
            "id": self.id,
            "public_id": self.public_id or self.id,
            "name": self.name,
            "provider": self.id.split("/")[0],
        }
        if self.context_length is not None:
            listed["context_length"] = self.context_length
        if self.prompt_price is not None and self.completion_price is not None:
            listed["pricing"] = {"prompt": self.prompt_price, "completion": self.completion_price}
        return listed


MODELS: tuple[Model, ...] = (
    Model("openai/gpt-4o", "GPT-4o", "0.0000025", "0.00001", public_id="gpt-4o"),
    Model(
        "anthropic/claude-3.5-sonnet", "Claude 3.5 Sonnet", "0.000003", "0.000015", None, 200_000
    ),
    Model("meta/llama-3.3-70b", "Llama 3.3 70B", "0.00000059", "0.00000079", None, 131_072),
    Model("sim/echo", "Simulator: echo", script=Script.ECHO),
    Model("sim/markdown", "Simulator: markdown sampler", script=Script.MARKDOWN),
    Model("sim/long", "Simulator: long reply", script=Script.LONG),
    Model("sim/slow-first-byte", "Simulator: slow first byte", script=Script.SLOW_FIRST_BYTE),
    Model("sim/stall", "Simulator: stalls mid-stream", script=Script.STALL),
    Model("sim/cut", "Simulator: cuts the connection", script=Script.CUT),
    Model("sim/error-mid-stream", "Simulator: error mid-stream", script=Script.ERROR_MID_STREAM),
    Model("sim/server-error", "Simulator: 500", script=Script.SERVER_ERROR),
    Model("sim/html-error", "Simulator: 502 HTML page", script=Script.HTML_ERROR),
    Model("sim/bench", "Simulator: benchmark stream", script=Script.BENCH),
)

# A large account, as Nobox's 300+ models look: tokens starting with `catalogue` list these after
# MODELS (see `models_for`). Every 7th is free, every 11th has no pricing, every 5th no context
# length, so a model picker meets all of them.
CATALOGUE_PROVIDERS = (
    ("openai", "OpenAI"),
    ("anthropic", "Anthropic"),
    ("google", "Google"),
    ("meta", "Meta"),
    ("deepseek", "DeepSeek"),
    ("mistralai", "Mistral"),
    ("qwen", "Qwen"),
    ("x-ai", "xAI"),
    ("cohere", "Cohere"),
    ("nvidia", "NVIDIA"),
)
CATALOGUE_PER_PROVIDER = 32
CATALOGUE_TOKEN_PREFIX = "catalogue"


def _catalogue_model(index: int) -> Model:
    slug, brand = CATALOGUE_PROVIDERS[index % len(CATALOGUE_PROVIDERS)]
    number = index // len(CATALOGUE_PROVIDERS) + 1
    prompt, completion = f"{number}e-7", f"{number * 4}e-7"
    if index % 7 == 3:
        prompt, completion = "0", "0"
    priced = index % 11 != 5
    return Model(
        f"{slug}/catalogue-{number:02d}",
        f"{brand} Catalogue {number:02d}",
        prompt if priced else None,
        completion if priced else None,
        context_length=None if index % 5 == 4 else 8_192 * (1 + index % 16),
    )


CATALOGUE: tuple[Model, ...] = tuple(
    _catalogue_model(i) for i in range(len(CATALOGUE_PROVIDERS) * CATALOGUE_PER_PROVIDER)
)


def models_for(token: str) -> tuple[Model, ...]:
    """The models a token's account may use."""
    return MODELS + CATALOGUE if token.startswith(CATALOGUE_TOKEN_PREFIX) else MODELS


FILLER = (
    "This reply comes from the Nobox simulator, not from a model. It streams in small pieces "
    "so that clients, relays and browsers can be tested offline: a café ☕ for the UTF-8 "
    "decoders, *emphasis* and `code` for the renderer, and a steady rhythm for the benchmarks."
)

HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)

MARKDOWN_SAMPLE = """## Markdown sampler ☕

You asked: “{quote}”. Here is every block the chat should render.

### A list

- an item with **bold**, *italic* and `inline code`
- an item with a [link](https://example.com)
  1. a nested ordered item
  2. and another one

### A table

| Model | Prompt (USD/token) | Completion (USD/token) |
|---|---:|---:|
| gpt-4o | 0.0000025 | 0.00001 |
| sim/echo | 0 | 0 |

### Python

```python
def greet(name: str) -> str:
    return f"Hello, {{name}}!"
```

### JavaScript

```javascript
const greet = (name) => `Hello, ${{name}}!`;
console.log(greet("café"));
```

> That is all, folks.
"""


class ApiError(Exception):
    """An error answered as `{"error": {"type": ..., "message": ...}}` before any body byte."""

    def __init__(self, status: int, type_: str, message: str, headers: Headers = ()) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.headers = headers


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_request_error", message)


# --- configuration --------------------------------------------------------------------------


def checked_config(
    tokens_per_second: float, reply_tokens: int, first_byte_delay: float
) -> SimConfig:
    if not 0 <= tokens_per_second < float("inf"):
        raise ValueError(f"tokens per second must be >= 0, got {tokens_per_second}")
    if not 1 <= reply_tokens <= MAX_REPLY_TOKENS:
        raise ValueError(f"reply tokens must be 1..{MAX_REPLY_TOKENS}, got {reply_tokens}")
    if not 0 <= first_byte_delay < float("inf"):
        raise ValueError(f"first byte delay must be >= 0, got {first_byte_delay}")
    return SimConfig(tokens_per_second, reply_tokens, first_byte_delay)


def config_from_env(environ: Mapping[str, str]) -> SimConfig:
    """Read NOBOX_SIM_TOKENS_PER_SECOND, NOBOX_SIM_REPLY_TOKENS, NOBOX_SIM_FIRST_BYTE_DELAY."""
    default = SimConfig()
    return checked_config(
        env_number(environ, "NOBOX_SIM_TOKENS_PER_SECOND", float, default.tokens_per_second),
        env_number(environ, "NOBOX_SIM_REPLY_TOKENS", int, default.reply_tokens),
        env_number(environ, "NOBOX_SIM_FIRST_BYTE_DELAY", float, default.first_byte_delay),
    )


# --- the request ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ChatCall:
    """A validated chat completion request."""

    model: str
    messages: list[dict[str, Any]]
    stream: bool
    include_usage: bool
    max_tokens: int | None


def _is_number(value: object) -> bool:
    # bool is an int subclass, but `"temperature": true` is still a client bug
    return isinstance(value, int | float) and not isinstance(value, bool)


def _valid_part(part: object) -> bool:
    if not isinstance(part, dict):
        return False
    kind = part.get("type")
    if kind == "text":
        return isinstance(part.get("text"), str)
    if not isinstance(kind, str) or kind not in PART_FIELDS:
        return False
    inner = part.get(kind)
    return isinstance(inner, dict) and all(isinstance(inner.get(f), str) for f in PART_FIELDS[kind])


def _check_message(message: object) -> None:
    if not isinstance(message, dict) or message.get("role") not in ROLES:
        raise invalid("each message needs a role: system, user or assistant")
    content = message.get("content")
    if isinstance(content, list):
        if not all(_valid_part(part) for part in content):
            raise invalid("content parts must be text, image_url or input_audio objects")
    elif not isinstance(content, str):
        raise invalid("message content must be a string or a list of parts")


def parse_chat(body: bytes) -> ChatCall:
    try:
        data = json.loads(body)
    except ValueError:  # also UnicodeDecodeError
        raise invalid("the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise invalid("the request body must be a JSON object")
    model, messages = data.get("model"), data.get("messages")
    if not isinstance(model, str) or not model:
        raise invalid("`model` is required and must be a string")
    if not isinstance(messages, list) or not messages:
        raise invalid("`messages` is required and must be a non-empty list")
    for message in messages:
        _check_message(message)
    temperature = data.get("temperature")
    if temperature is not None and not (_is_number(temperature) and 0 <= temperature <= 2):
        raise invalid("`temperature` must be a number between 0 and 2")
    max_tokens = data.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool)):
        raise invalid("`max_tokens` must be an integer")
    if max_tokens is not None and max_tokens < 1:
        raise invalid("`max_tokens` must be at least 1")
    stream, options = data.get("stream", False), data.get("stream_options") or {}
    if not isinstance(stream, bool) or not isinstance(options, dict):
        raise invalid("`stream` must be a boolean and `stream_options` an object")
    include_usage = options.get("include_usage", False)
    if not isinstance(include_usage, bool):
        raise invalid("`stream_options.include_usage` must be a boolean")
    return ChatCall(model, messages, stream, include_usage, max_tokens)


def find_model(name: str, token: str = "") -> Model:
    for model in models_for(token):
        if name in (model.id, model.public_id):
            return model
    raise ApiError(404, "model_not_found", f"Model {name!r} not found")


def bearer_token(headers: Mapping[str, str]) -> str:
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def check_token(token: str) -> None:
    if not token or token.startswith("invalid"):
        raise ApiError(401, "invalid_token", "Invalid or missing authorization token")
    if token.startswith("ratelimited"):
        raise ApiError(429, "rate_limit_exceeded", "Rate limit exceeded", [(b"retry-after", b"1")])


def _bounded(what: str, raw: str, parse: Callable[[str], N], low: N, high: N) -> N:
    try:
        value = parse(raw.strip())
    except ValueError:
        raise invalid(f"{what} is not a number") from None
    if not low <= value <= high:  # also rejects nan
        raise invalid(f"{what} must be between {low} and {high}")
    return value


def _header_number(
    headers: Mapping[str, str], name: str, parse: Callable[[str], N], default: N, low: N, high: N
) -> N:
    raw = headers.get(name)
    return default if raw is None else _bounded(f"header {name}", raw, parse, low, high)


def _prompt_number(
    text: str, name: str, parse: Callable[[str], N], default: N, low: N, high: N
) -> N:
    found = re.search(rf"(?<!\S){name}=(\S+)", text)
    return default if found is None else _bounded(f"{name}=", found.group(1), parse, low, high)


# --- the reply ------------------------------------------------------------------------------


def _texts(content: str | list[dict[str, Any]]) -> list[str]:
    if isinstance(content, str):
        return [content]
    return [part["text"] for part in content if part["type"] == "text"]


def count_words(messages: list[dict[str, Any]]) -> int:
    """Our stand-in for prompt tokens."""
    return sum(len(text.split()) for m in messages for text in _texts(m["content"]))


def split_pieces(text: str) -> list[str]:
    """Word-ish "tokens" that join back to exactly `text`."""
    return re.findall(r"\s*\S+\s*", text)


def _attachment_note(content: str | list[dict[str, Any]]) -> str:
    if isinstance(content, str):
        return ""
    images = sum(part["type"] == "image_url" for part in content)
    audio = sum(part["type"] == "input_audio" for part in content)
    if not images and not audio:
        return ""
    return f"Received {images} image(s) and {audio} audio part(s).\n\n"


def _last_user_content(messages: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    users = [m for m in messages if m["role"] == "user"]
    content: str | list[dict[str, Any]] = users[-1]["content"] if users else ""
    return content


# --- the benchmark stream ---------------------------------------------------------------------

BENCH_STAMP = re.compile(r"\[k=(\d+) t=(\d+\.\d+)\]")


def bench_piece(index: int, sent_at: float) -> str:
    """Chunk `index` of a `sim/bench` reply, stamped with the wall-clock time it was sent.

    time.time() is one clock for every process of a machine, so a client anywhere downstream
    (straight from us or through a relay, which may merge chunks) finds each chunk's stamp in
    the text it rebuilt and takes its lag as arrival time minus stamp. See BENCH_STAMP.
    """
    return f"[k={index} t={sent_at:.6f}] "


def bench_shape(messages: list[dict[str, Any]], chunks: int, rate: float) -> tuple[int, float]:
    """`chunks=N` and `rate=R` (chunks a second, 0 = at once) from the last user message."""
    said = " ".join(_texts(_last_user_content(messages)))
    return (
        _prompt_number(said, "chunks", int, chunks, 1, MAX_REPLY_TOKENS),
        _prompt_number(said, "rate", float, rate, 0.0, 1e6),
    )


def reply_text(model: Model, messages: list[dict[str, Any]], reply_tokens: int) -> str:
    """The deterministic markdown answer to the last user message."""
    content = _last_user_content(messages)
    said, note = " ".join(_texts(content)), _attachment_note(content)
    if model.script is Script.BENCH:
        # the shape only: a stream stamps each chunk with the time it really leaves
        chunks, _ = bench_shape(messages, reply_tokens, 0.0)
        return "".join(bench_piece(k, 0.0) for k in range(chunks))
    if model.script is Script.ECHO:
        # verbatim, so tests can send exactly the markdown (or the hostile HTML) they need
        return (said + ("\n\n" + note if note else "")).strip() or "(empty message)"
    quote = " ".join(said.split())
    if model.script is Script.MARKDOWN:
        return note + MARKDOWN_SAMPLE.format(quote=quote)
    size = reply_tokens * 10 if model.script is Script.LONG else reply_tokens
    pieces = split_pieces(f"### Simulated reply ☕\n\n{note}You said: “{quote}”\n\n")
    while len(pieces) < size:
        pieces += split_pieces(FILLER + "\n\n")
    return "".join(pieces[:size]).rstrip()


@dataclass(frozen=True)
class Reply:
    """One answer, ready to go out streamed or whole."""

    id: str
    created: int
    model: Model
    pieces: list[str]
    finish_reason: str
    prompt_tokens: int
    include_usage: bool
    tokens_per_second: float

    def usage(self) -> dict[str, int]:
        done = len(self.pieces)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": done,
            "total_tokens": self.prompt_tokens + done,
        }

    def _envelope(self, kind: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.model.id,
            "choices": choices,
        }

    def chunk(self, delta: dict[str, str], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        return self._envelope("chat.completion.chunk", [choice])

    def usage_chunk(self) -> dict[str, Any]:
        return self._envelope("chat.completion.chunk", []) | {"usage": self.usage()}

    def completion(self) -> dict[str, Any]:
        message = {"role": "assistant", "content": "".join(self.pieces)}
        choice = {"index": 0, "message": message, "finish_reason": self.finish_reason}
        return self._envelope("chat.completion", [choice]) | {"usage": self.usage()}


def build_reply(
    call: ChatCall, model: Model, config: SimConfig, headers: Mapping[str, str]
) -> Reply:
    speed = _header_number(
        headers, "x-sim-tokens-per-second", float, config.tokens_per_second, 0.0, 1e6
    )
    size = _header_number(
        headers, "x-sim-reply-tokens", int, config.reply_tokens, 1, MAX_REPLY_TOKENS
    )
    if model.script is Script.BENCH:
        size, speed = bench_shape(call.messages, size, speed)
        pieces = [bench_piece(k, time.time()) for k in range(size)]
    else:
        pieces = split_pieces(reply_text(model, call.messages, size))
    limit = call.max_tokens or len(pieces)
    return Reply(
        id=f"chatcmpl-{uuid.uuid4().hex[:24]}",
        created=int(time.time()),
        model=model,
        pieces=pieces[:limit],
        finish_reason="length" if len(pieces) > limit else "stop",
        prompt_tokens=count_words(call.messages),
        include_usage=call.include_usage,
        tokens_per_second=speed,
    )


# --- ASGI plumbing --------------------------------------------------------------------------


def _dumps(payload: object) -> bytes:
    # ensure_ascii=False: real UTF-8 on the wire, so clients' decoders get exercised
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


async def _start(send: Send, status: int, content_type: str, headers: Headers = ()) -> None:
    all_headers = [(b"content-type", content_type.encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": all_headers})


async def _body(send: Send, data: bytes, more: bool = False) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": more})


async def _send_whole(
    send: Send, status: int, content_type: str, data: bytes, headers: Headers = ()
) -> None:
    await _start(send, status, content_type, [(b"content-length", b"%d" % len(data)), *headers])
    await _body(send, data)


async def _send_error(send: Send, error: ApiError) -> None:
    payload = {"error": {"type": error.type, "message": error.message}}
    await _send_whole(send, error.status, "application/json", _dumps(payload), error.headers)


async def _event(send: Send, payload: object) -> None:
    await _body(send, b"data: " + _dumps(payload) + b"\n\n", more=True)


async def _drop_connection(send: Send) -> None:
    """Close the TCP connection mid-body, as a crashing proxy would: no [DONE], no terminator.

    ASGI has no message for this. Raising does not work under daphne 4: it then tries to send
    a 500 page on the already started response, fails inside its reaper loop and leaves the
    connection hanging open. Daphne's `send` is `functools.partial(server.handle_reply,
    protocol)`, so we reach the Twisted transport through it. Servers without that shape
    (uvicorn, hypercorn) do abort the connection when the app raises, so they get that.
    """
    protocol = next(iter(getattr(send, "args", ())), None)
    transport = getattr(getattr(protocol, "channel", None), "transport", None)
    if transport is None:
        raise ConnectionAbortedError("simulated cut connection")
    # loseConnection (not abortConnection) flushes what was written first, so the client
    # reliably sees the deltas before the cut
    transport.loseConnection()


async def _pace(reply: Reply, pieces: int) -> None:
    if reply.tokens_per_second > 0 and pieces > 0:
        await asyncio.sleep(pieces / reply.tokens_per_second)


async def _send_deltas(send: Send, reply: Reply, start: int, stop: int) -> None:
    last = len(reply.pieces) - 1
    for i in range(start, min(stop, last + 1)):
        await _pace(reply, 1 if i else 0)
        finish = reply.finish_reason if i == last else None
        await _event(send, reply.chunk({"content": reply.pieces[i]}, finish))


async def _send_scheduled(send: Send, reply: Reply) -> None:
    """The `sim/bench` stream: chunk k is due at start + k / rate, stamped when it goes out.

    An absolute schedule, unlike `_pace`: on a busy machine a late chunk does not push back
    every later one, so the stream keeps its rate and the stamps show when it really sent.
    """
    began, last = time.monotonic(), len(reply.pieces) - 1
    for i in range(last + 1):
        if reply.tokens_per_second > 0:
            delay = began + i / reply.tokens_per_second - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        finish = reply.finish_reason if i == last else None
        await _event(send, reply.chunk({"content": bench_piece(i, time.time())}, finish))


async def _stream(send: Send, reply: Reply) -> None:
    script = reply.model.script
    await _start(send, 200, "text/event-stream; charset=utf-8", [(b"cache-control", b"no-cache")])
    await _event(send, reply.chunk({"role": "assistant", "content": ""}))
    fault_at = FAULT_AFTER_DELTAS if script in MID_STREAM_FAULTS else len(reply.pieces)
    if script is Script.BENCH:
        await _send_scheduled(send, reply)
    else:
        await _send_deltas(send, reply, 0, fault_at)
    if script is Script.CUT:
        await _drop_connection(send)
        return
    if script is Script.ERROR_MID_STREAM:
        error = {"type": "upstream_error", "message": "The provider failed mid-stream"}
        await _event(send, {"error": error})
        await _body(send, b"")  # a clean end, but without [DONE]
        return
    if script is Script.STALL:
        await asyncio.sleep(STALL_SECONDS)
    await _send_deltas(send, reply, fault_at, len(reply.pieces))
    if reply.include_usage:
        await _event(send, reply.usage_chunk())
    await _body(send, b"data: [DONE]\n\n")


async def _complete(send: Send, reply: Reply) -> None:
    script = reply.model.script
    if script is Script.ERROR_MID_STREAM:
        raise ApiError(502, "upstream_error", "The provider failed mid-generation")
    await _pace(reply, len(reply.pieces))  # a whole answer takes as long as its stream
    if script is Script.STALL:
        await asyncio.sleep(STALL_SECONDS)
    data = _dumps(reply.completion())
    if script is not Script.CUT:
        await _send_whole(send, 200, "application/json", data)
        return
    # announce the full length, send half, hang up: the client sees a truncated body
    await _start(send, 200, "application/json", [(b"content-length", b"%d" % len(data))])
    await _body(send, data[: len(data) // 2], more=True)
    await _drop_connection(send)


async def _chat(config: SimConfig, headers: Mapping[str, str], body: bytes, send: Send) -> None:
    call = parse_chat(body)
    model = find_model(call.model, bearer_token(headers))
    if bearer_token(headers).startswith("broke"):
        message = "Insufficient wallet balance to complete this request"
        raise ApiError(400, "insufficient_funds", message)
    reply = build_reply(call, model, config, headers)
    slow = SLOW_FIRST_BYTE_SECONDS if model.script is Script.SLOW_FIRST_BYTE else 0.0
    await asyncio.sleep(config.first_byte_delay + slow)
    if model.script is Script.SERVER_ERROR:
        raise ApiError(500, "server_error", "The provider failed to answer")
    if model.script is Script.HTML_ERROR:
        await _send_whole(send, 502, "text/html", HTML_502.encode())
    elif call.stream:
        await _stream(send, reply)
    else:
        await _complete(send, reply)


# Requests served per endpoint since start: tests assert "no upstream call was made" with it.
STATS_PATH = "/_sim/stats"
# The latest chat completion request bodies (a JSON list of the parsed bodies, oldest first).
REQUESTS_PATH = "/_sim/requests"
RECENT_REQUESTS = 20


async def _route(config: SimConfig, scope: Scope, body: bytes, send: Send) -> None:
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    path, method = scope["path"], scope["method"]
    if path == STATS_PATH:
        await _send_whole(send, 200, "application/json", _dumps(config.stats))
        return
    if path == REQUESTS_PATH:
        recent = b"[" + b",".join(config.requests) + b"]"
        await _send_whole(send, 200, "application/json", recent)
        return
    if path == f"{PREFIX}/v1/chat/completions":
        config.stats["chat_completions"] += 1
        config.requests.append(body)
    elif path == f"{PREFIX}/models":
        config.stats["models"] += 1
    routes = {f"{PREFIX}/models": ("GET", "POST"), f"{PREFIX}/v1/chat/completions": ("POST",)}
    if path not in routes:
        raise ApiError(404, "not_found", f"No route for {path}")
    if method not in routes[path]:
        raise ApiError(405, "invalid_request_error", f"Method {method} not allowed")
    check_token(bearer_token(headers))
    if path.endswith("/models"):
        models = {"data": [model.as_json() for model in models_for(bearer_token(headers))]}
        await _send_whole(send, 200, "application/json", _dumps(models))
    else:
        await _chat(config, headers, body, send)


async def _respond(config: SimConfig, scope: Scope, body: bytes, send: Send) -> None:
    try:
        await _route(config, scope, body, send)
    except ApiError as error:  # only raised before the response started
        await _send_error(send, error)


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None if the client left first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _until_disconnect(work: Awaitable[None], receive: Receive) -> None:
    """Run `work`, cancelling it as soon as the client disconnects.

    Otherwise a stalled reply would sleep on for minutes after its client left (daphne only
    kills such apps application_close_timeout later, and other servers may never).
    """

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    reply, watcher = asyncio.ensure_future(work), asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({reply, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        reply.cancel()
        watcher.cancel()
        await asyncio.gather(reply, watcher, return_exceptions=True)
    if not reply.cancelled():
        reply.result()  # re-raise a bug so the server logs it


def make_app(config: SimConfig) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # no websockets; lifespan is optional in ASGI
            return
        body = await _read_body(receive)
        if body is not None:
            await _until_disconnect(_respond(config, scope, body, send), receive)

    return app


app = make_app(config_from_env(os.environ))


# --- command line ---------------------------------------------------------------------------


def base_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{PREFIX}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    env, default = os.environ, config_from_env(os.environ)
    parser = argparse.ArgumentParser(
        prog="python -m chat.nobox.simulator", description="Serve the Nobox API simulator."
    )
    parser.add_argument("--host", default=env.get("NOBOX_SIM_HOST") or DEFAULT_HOST)
    parser.add_argument(
        "--port", type=int, default=env_number(env, "NOBOX_SIM_PORT", int, DEFAULT_PORT)
    )
    parser.add_argument("--tokens-per-second", type=float, default=default.tokens_per_second)
    parser.add_argument("--reply-tokens", type=int, default=default.reply_tokens)
    parser.add_argument("--first-byte-delay", type=float, default=default.first_byte_delay)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    config = checked_config(args.tokens_per_second, args.reply_tokens, args.first_byte_delay)
    # imported here: daphne.server installs Twisted's asyncio reactor as an import side effect
    from daphne.access import AccessLogGenerator
    from daphne.endpoints import build_endpoint_description_strings
    from daphne.server import Server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    print(f"Nobox simulator base URL: {base_url(args.host, args.port)}", flush=True)
    Server(
        application=make_app(config),
        endpoints=build_endpoint_description_strings(host=args.host, port=args.port),
        action_logger=AccessLogGenerator(sys.stdout),
    ).run()


if __name__ == "__main__":
    main()
