"""The Nobox simulator, driven over real HTTP: by the official openai SDK, and by httpx for the
faults the SDK would hide."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from chat.nobox import simulator
from tests import servers

TOKEN = "sk-test"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HELLO: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Tell me about café culture"}
]


@pytest.fixture(scope="module")
def simulator_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real simulator process; tokens come as fast as possible unless a test asks otherwise."""
    log = tmp_path_factory.mktemp("simulator") / "simulator.log"
    with servers.simulator(tokens_per_second=0, log_path=log) as url:
        assert f"base URL: {url}" in log.read_text()
        yield url


def _chat(model: str = "gpt-4o", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": HELLO, **extra}


def _sse_data(lines: Iterator[str]) -> Iterator[str]:
    for line in lines:
        if line.startswith("data: "):
            yield line[len("data: ") :]


def _read_stream(url: str, body: dict[str, Any], **headers: str) -> list[str]:
    """The `data:` payloads of a streamed completion that ends cleanly."""
    with httpx.stream(
        "POST",
        f"{url}/v1/chat/completions",
        json={**body, "stream": True},
        headers={**AUTH, **headers},
        timeout=10,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(_sse_data(response.iter_lines()))


def _content(events: list[str]) -> str:
    chunks = [json.loads(e) for e in events if e != "[DONE]"]
    return "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])


def _sdk(url: str, token: str = TOKEN) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=token, max_retries=0)


# --- the official SDK -----------------------------------------------------------------------


def test_sdk_streams_a_full_reply_with_usage(simulator_url: str) -> None:
    stream = _sdk(simulator_url).chat.completions.create(
        model="gpt-4o", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("### Simulated reply ☕\n\nYou said: “Tell me about café culture”")
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (5, 120, 125)
    assert all(c.model == "openai/gpt-4o" and c.id == chunks[0].id for c in chunks)


async def test_async_sdk_streams_the_same_text_as_a_whole_completion(simulator_url: str) -> None:
    client = openai.AsyncOpenAI(base_url=f"{simulator_url}/v1", api_key=TOKEN, max_retries=0)
    stream = await client.chat.completions.create(
        model="anthropic/claude-3.5-sonnet",
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, usage, finish = [], None, None
    async for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
        usage = chunk.usage or usage
    whole = await client.chat.completions.create(
        model="anthropic/claude-3.5-sonnet", messages=HELLO
    )
    await client.close()

    assert "".join(pieces) == whole.choices[0].message.content
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens == 120


def test_sdk_gets_a_whole_completion(simulator_url: str) -> None:
    completion = _sdk(simulator_url).chat.completions.create(
        model="meta/llama-3.3-70b", messages=HELLO, temperature=0.7, max_tokens=150
    )

    assert completion.object == "chat.completion"
    assert completion.model == "meta/llama-3.3-70b"
    assert completion.choices[0].message.role == "assistant"
    assert "You said: “Tell me about café culture”" in (completion.choices[0].message.content or "")
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens == 120


@pytest.mark.parametrize(
    ("token", "model", "params", "error", "error_type"),
    [
        ("invalid-123", "gpt-4o", {}, openai.AuthenticationError, "invalid_token"),
        ("broke-alice", "gpt-4o", {}, openai.BadRequestError, "insufficient_funds"),
        (TOKEN, "acme/nope", {}, openai.NotFoundError, "model_not_found"),
        ("ratelimited-bob", "gpt-4o", {}, openai.RateLimitError, "rate_limit_exceeded"),
        (TOKEN, "gpt-4o", {"temperature": 2.5}, openai.BadRequestError, "invalid_request_error"),
        (TOKEN, "sim/server-error", {}, openai.InternalServerError, "server_error"),
    ],
)
def test_sdk_raises_typed_errors(
    simulator_url: str,
    token: str,
    model: str,
    params: dict[str, Any],
    error: type[openai.APIStatusError],
    error_type: str,
) -> None:
    with pytest.raises(error) as caught:
        _sdk(simulator_url, token).chat.completions.create(model=model, messages=HELLO, **params)

    assert caught.value.type == error_type
    assert caught.value.message


def test_rate_limit_says_when_to_retry(simulator_url: str) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        _sdk(simulator_url, "ratelimited").chat.completions.create(model="gpt-4o", messages=HELLO)

    assert caught.value.response.headers["retry-after"] == "1"


def test_sdk_raises_on_an_error_mid_stream(simulator_url: str) -> None:
    stream = _sdk(simulator_url).chat.completions.create(
        model="sim/error-mid-stream", messages=HELLO, stream=True
    )
    seen = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            seen.append(chunk.choices[0].delta.content or "")

    assert caught.value.type == "upstream_error"
    assert "".join(seen) == "### Simulated reply "


# --- errors and validation over plain HTTP --------------------------------------------------


def test_missing_token_is_rejected(simulator_url: str) -> None:
    response = httpx.post(f"{simulator_url}/v1/chat/completions", json=_chat())

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_token"


def test_broke_token_can_still_list_models(simulator_url: str) -> None:
    headers = {"Authorization": "Bearer broke-carol"}
    response = httpx.post(f"{simulator_url}/models", headers=headers)

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff", "not valid JSON"),
        (b"[]", "must be a JSON object"),
        ({"messages": HELLO}, "`model` is required"),
        ({"model": 4, "messages": HELLO}, "`model` is required"),
        ({"model": "gpt-4o"}, "`messages` is required"),
        ({"model": "gpt-4o", "messages": []}, "`messages` is required"),
        ({"model": "gpt-4o", "messages": "hi"}, "`messages` is required"),
        ({"model": "gpt-4o", "messages": ["hi"]}, "needs a role"),
        ({"model": "gpt-4o", "messages": [{"role": "robot", "content": "hi"}]}, "needs a role"),
        ({"model": "gpt-4o", "messages": [{"role": "user", "content": 7}]}, "string or a list"),
        ({"model": "gpt-4o", "messages": [{"role": "user", "content": ["hi"]}]}, "content parts"),
        (
            {"model": "gpt-4o", "messages": [{"role": "user", "content": [{"type": "video"}]}]},
            "content parts",
        ),
        (
            {"model": "gpt-4o", "messages": [{"role": "user", "content": [{"type": 3}]}]},
            "content parts",
        ),
        (
            {"model": "gpt-4o", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            "content parts",
        ),
        (
            {"model": "gpt-4o", "messages": [{"role": "user", "content": [{"type": "text"}]}]},
            "content parts",
        ),
        (_chat(temperature=-0.1), "`temperature` must be"),
        (_chat(temperature=2.5), "`temperature` must be"),
        (_chat(temperature="warm"), "`temperature` must be"),
        (_chat(temperature=True), "`temperature` must be"),
        (_chat(max_tokens=0), "`max_tokens` must be at least 1"),
        (_chat(max_tokens=1.5), "`max_tokens` must be an integer"),
        (_chat(max_tokens=True), "`max_tokens` must be an integer"),
        (_chat(stream="yes"), "`stream` must be a boolean"),
        (_chat(stream=True, stream_options="all"), "`stream_options` an object"),
        (_chat(stream=True, stream_options={"include_usage": "yes"}), "include_usage"),
    ],
)
def test_an_invalid_request_is_refused_saying_what_is_wrong(
    body: bytes | dict[str, Any], problem: str
) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(simulator.ApiError) as caught:
        simulator.parse_chat(content)
    assert (caught.value.status, caught.value.type) == (400, "invalid_request_error")
    assert problem in str(caught.value)


def test_a_valid_request_keeps_what_the_reply_needs() -> None:
    parts = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
        {"type": "input_audio", "input_audio": {"data": "UklGR", "format": "wav"}},
    ]
    body = _chat(
        messages=[{"role": "user", "content": parts}],
        temperature=0,
        max_tokens=9,
        stream=True,
        stream_options={"include_usage": True},
    )
    call = simulator.parse_chat(json.dumps(body).encode())
    assert call == simulator.ChatCall("gpt-4o", body["messages"], True, True, 9)


@pytest.mark.parametrize("body", [b"{not json", json.dumps(_chat(max_tokens=0)).encode()])
def test_invalid_requests_are_400(simulator_url: str, body: bytes) -> None:
    response = httpx.post(f"{simulator_url}/v1/chat/completions", content=body, headers=AUTH)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"]


@pytest.mark.parametrize("header", ["X-Sim-Reply-Tokens", "X-Sim-Tokens-Per-Second"])
def test_bad_override_headers_are_400(simulator_url: str, header: str) -> None:
    response = httpx.post(
        f"{simulator_url}/v1/chat/completions", json=_chat(), headers={**AUTH, header: "-1"}
    )

    assert response.status_code == 400
    assert header.lower() in response.json()["error"]["message"]


def test_unknown_paths_and_methods(simulator_url: str) -> None:
    assert httpx.post(f"{simulator_url}/v1/models", headers=AUTH).status_code == 404
    assert httpx.get(f"{simulator_url}/v1/chat/completions", headers=AUTH).status_code == 405


# --- models ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_models_list_has_ids_and_pricing(simulator_url: str, method: str) -> None:
    response = httpx.request(method, f"{simulator_url}/models", headers=AUTH)

    assert response.status_code == 200
    models = {m["id"]: m for m in response.json()["data"]}
    gpt = models["openai/gpt-4o"]
    assert gpt["public_id"] == "gpt-4o"
    assert gpt["name"] == "GPT-4o"
    assert gpt["pricing"] == {"prompt": "0.0000025", "completion": "0.00001"}
    assert gpt["context_length"] == 128_000
    assert models["sim/echo"]["pricing"] == {"prompt": "0", "completion": "0"}
    faults = ["slow-first-byte", "stall", "cut", "error-mid-stream", "server-error", "html-error"]
    assert {f"sim/{name}" for name in [*faults, "long", "markdown", "bench"]} <= models.keys()


def test_models_list_needs_a_token(simulator_url: str) -> None:
    response = httpx.post(f"{simulator_url}/models")

    assert response.status_code == 401
    assert response.json() == {
        "error": {"type": "invalid_token", "message": "Invalid or missing authorization token"}
    }


def test_a_catalogue_token_lists_three_hundred_models_free_unpriced_and_without_context(
    simulator_url: str,
) -> None:
    auth = {"Authorization": f"Bearer {simulator.CATALOGUE_TOKEN_PREFIX}-{TOKEN}"}
    listed = httpx.post(f"{simulator_url}/models", headers=auth).json()["data"]

    assert len(listed) == len(simulator.MODELS) + len(simulator.CATALOGUE) > 300
    assert len({m["id"] for m in listed}) == len(listed)
    extra = listed[len(simulator.MODELS) :]
    assert any(m["pricing"] == {"prompt": "0", "completion": "0"} for m in extra if "pricing" in m)
    assert any("pricing" not in m for m in extra)
    assert any("context_length" not in m for m in extra)
    assert {m["provider"] for m in extra} >= {"openai", "google", "x-ai"}
    # Its models answer for that token only, as Nobox answers for the models an account has.
    model = extra[-1]["id"]
    answered = httpx.post(
        f"{simulator_url}/v1/chat/completions", json=_chat(model), headers=auth, timeout=30
    )
    assert answered.status_code == 200
    assert answered.json()["model"] == model
    refused = httpx.post(f"{simulator_url}/v1/chat/completions", json=_chat(model), headers=AUTH)
    assert refused.status_code == 404


# --- replies --------------------------------------------------------------------------------


def test_max_tokens_cuts_the_reply_with_finish_reason_length(simulator_url: str) -> None:
    body = _chat(max_tokens=5, stream_options={"include_usage": True})
    events = _read_stream(simulator_url, body)
    chunks = [json.loads(e) for e in events[:-1]]
    whole = httpx.post(
        f"{simulator_url}/v1/chat/completions", json=_chat(max_tokens=5), headers=AUTH
    ).json()

    assert events[-1] == "[DONE]"
    assert _content(events) == "### Simulated reply ☕\n\nYou "
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 5
    assert whole["choices"][0]["finish_reason"] == "length"
    assert whole["choices"][0]["message"]["content"] == _content(events)


def test_usage_only_when_asked_for(simulator_url: str) -> None:
    events = _read_stream(simulator_url, _chat())

    assert events[-1] == "[DONE]"
    assert all("usage" not in json.loads(e) for e in events[:-1])


def test_reply_tokens_header_sets_the_length(simulator_url: str) -> None:
    events = _read_stream(simulator_url, _chat(), **{"X-Sim-Reply-Tokens": "7"})
    deltas = [json.loads(e)["choices"][0]["delta"] for e in events[1:-1]]

    assert len(deltas) == 7
    assert _content(events) == "### Simulated reply ☕\n\nYou said: “Tell"


def test_tokens_per_second_header_paces_the_stream(simulator_url: str) -> None:
    headers = {"X-Sim-Reply-Tokens": "11", "X-Sim-Tokens-Per-Second": "20"}
    started = time.monotonic()
    events = _read_stream(simulator_url, _chat(), **headers)

    # 10 gaps of 1/20 s between 11 pieces
    assert time.monotonic() - started >= 0.5
    assert events[-1] == "[DONE]"


def test_attachments_are_counted_in_the_reply(simulator_url: str) -> None:
    content = [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
    ]
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": content}]}
    text = _content(_read_stream(simulator_url, body))

    assert "Received 2 image(s) and 1 audio part(s)." in text
    assert "You said: “What is in these?”" in text


def test_echo_returns_the_last_user_message_verbatim(simulator_url: str) -> None:
    said = "# Title\n\n<script>alert('x')</script> and `code` 🎉"
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": said},
    ]
    events = _read_stream(simulator_url, {"model": "sim/echo", "messages": messages})

    assert _content(events) == said


def test_long_model_sends_ten_times_the_reply_tokens(simulator_url: str) -> None:
    body = _chat("sim/long", stream_options={"include_usage": True})
    usage = json.loads(_read_stream(simulator_url, body)[-2])["usage"]

    assert usage["completion_tokens"] == 1200


def test_markdown_model_sends_rich_markdown(simulator_url: str) -> None:
    text = _content(_read_stream(simulator_url, _chat("sim/markdown")))

    assert text.startswith("## Markdown sampler ☕\n\nYou asked: “Tell me about café culture”")
    for block in ["\n- an item", "\n| Model |", "\n```python\n", "\n```javascript\n", "\n### "]:
        assert block in text


# --- faults ---------------------------------------------------------------------------------


def test_slow_first_byte_delays_the_headers(simulator_url: str) -> None:
    started = time.monotonic()
    response = httpx.post(
        f"{simulator_url}/v1/chat/completions", json=_chat("sim/slow-first-byte"), headers=AUTH
    )

    assert time.monotonic() - started >= 2.5
    assert response.status_code == 200
    assert response.json()["choices"][0]["finish_reason"] == "stop"


def test_stall_stops_sending_after_some_deltas(simulator_url: str) -> None:
    events: list[str] = []
    timeout = httpx.Timeout(10, read=1.0)
    with (
        pytest.raises(httpx.ReadTimeout),
        httpx.stream(
            "POST",
            f"{simulator_url}/v1/chat/completions",
            json=_chat("sim/stall", stream=True),
            headers=AUTH,
            timeout=timeout,
        ) as response,
    ):
        events.extend(_sse_data(response.iter_lines()))

    assert _content(events) == "### Simulated reply "
    assert "[DONE]" not in events


@pytest.mark.parametrize("stream", [True, False])
def test_cut_drops_the_connection_mid_body(simulator_url: str, stream: bool) -> None:
    received: list[str] = []
    with (
        pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)),
        httpx.stream(
            "POST",
            f"{simulator_url}/v1/chat/completions",
            json=_chat("sim/cut", stream=stream),
            headers=AUTH,
            timeout=10,
        ) as response,
    ):
        assert response.status_code == 200
        received.extend(response.iter_text())

    body = "".join(received)
    assert "[DONE]" not in body
    if stream:
        assert _content(list(_sse_data(iter(body.splitlines())))) == "### Simulated reply "


def test_error_mid_stream_follows_some_deltas(simulator_url: str) -> None:
    events = _read_stream(simulator_url, _chat("sim/error-mid-stream"))

    assert _content(events[:-1]) == "### Simulated reply "
    assert json.loads(events[-1]) == {
        "error": {"type": "upstream_error", "message": "The provider failed mid-stream"}
    }
    assert "[DONE]" not in events


@pytest.mark.parametrize("stream", [True, False])
def test_html_error_is_a_502_page(simulator_url: str, stream: bool) -> None:
    response = httpx.post(
        f"{simulator_url}/v1/chat/completions",
        json=_chat("sim/html-error", stream=stream),
        headers=AUTH,
    )

    assert response.status_code == 502
    assert response.headers["content-type"] == "text/html"
    assert response.text.startswith("<html>")
    assert "502 Bad Gateway" in response.text


def test_server_error_is_a_500_json_error(simulator_url: str) -> None:
    response = httpx.post(
        f"{simulator_url}/v1/chat/completions", json=_chat("sim/server-error"), headers=AUTH
    )

    assert response.status_code == 500
    assert response.json()["error"]["type"] == "server_error"


# --- the benchmark stream -------------------------------------------------------------------


def _bench_stream(url: str, text: str, **headers: str) -> tuple[float, list[tuple[float, str]]]:
    """(request time, [(arrival, content)]) of a streamed sim/bench reply, by wall clock."""
    body = {"model": "sim/bench", "stream": True, "messages": [{"role": "user", "content": text}]}
    arrived: list[tuple[float, str]] = []
    started = time.time()
    with httpx.stream(
        "POST", f"{url}/v1/chat/completions", json=body, headers={**AUTH, **headers}, timeout=10
    ) as response:
        assert response.status_code == 200
        for data in _sse_data(response.iter_lines()):
            choices = [] if data == "[DONE]" else json.loads(data)["choices"]
            if choices and choices[0]["delta"].get("content"):
                arrived.append((time.time(), choices[0]["delta"]["content"]))
    return started, arrived


def test_bench_model_stamps_each_chunk_with_the_time_it_was_sent(simulator_url: str) -> None:
    started, arrived = _bench_stream(simulator_url, "go chunks=11 rate=50")
    stamps = [simulator.BENCH_STAMP.fullmatch(text.strip()) for _, text in arrived]

    assert all(stamps)
    indices = [int(m.group(1)) for m in stamps if m]
    sent = [float(m.group(2)) for m in stamps if m]
    assert indices == list(range(11))
    assert all(s <= a for s, (a, _) in zip(sent, arrived, strict=True))
    assert sent[0] - started < 0.5  # no first-byte delay: a relay's overhead is not hidden
    # an absolute schedule: chunk k leaves at start + k/50, so ten gaps take about 0.2 s
    assert 0.19 <= sent[-1] - sent[0] < 1.0
    assert sent == sorted(sent)


def test_bench_model_shape_from_the_prompt_beats_headers(simulator_url: str) -> None:
    _, from_prompt = _bench_stream(simulator_url, "chunks=3 rate=0", **{"X-Sim-Reply-Tokens": "7"})
    _, from_header = _bench_stream(simulator_url, "no shape here", **{"X-Sim-Reply-Tokens": "7"})

    assert len(from_prompt) == 3
    assert len(from_header) == 7


@pytest.mark.parametrize("text", ["chunks=0", "chunks=many", "rate=-1"])
def test_bench_model_rejects_a_bad_shape(simulator_url: str, text: str) -> None:
    body = {"model": "sim/bench", "messages": [{"role": "user", "content": text}]}
    response = httpx.post(f"{simulator_url}/v1/chat/completions", json=body, headers=AUTH)

    assert response.status_code == 400
    assert text.split("=")[0] in response.json()["error"]["message"]


def test_bench_model_text_is_its_shape() -> None:
    model = simulator.find_model("sim/bench")
    text = simulator.reply_text(model, [{"role": "user", "content": "chunks=2"}], 120)

    assert text == "[k=0 t=0.000000] [k=1 t=0.000000] "


# --- in process -----------------------------------------------------------------------------


async def test_a_stalled_reply_stops_when_the_client_leaves() -> None:
    app = simulator.make_app(simulator.SimConfig(tokens_per_second=0))
    body = json.dumps(_chat("sim/stall", stream=True)).encode()
    incoming = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if incoming:
            return incoming.pop()
        await asyncio.sleep(0.2)  # the client gives up after a moment
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/_f_/v1/chat/completions",
        "headers": [(b"authorization", b"Bearer sk-test")],
    }
    await asyncio.wait_for(app(scope, receive, send), timeout=5)

    assert sent[0]["status"] == 200
    assert len(sent) == 1 + 1 + simulator.FAULT_AFTER_DELTAS  # start, role chunk, deltas
    assert all(m.get("more_body") for m in sent[1:])


def test_config_from_env_reads_and_checks_numbers() -> None:
    env = {"NOBOX_SIM_TOKENS_PER_SECOND": "0", "NOBOX_SIM_REPLY_TOKENS": "30"}

    assert simulator.config_from_env(env) == simulator.SimConfig(0.0, 30, 0.0)
    with pytest.raises(ValueError, match="NOBOX_SIM_REPLY_TOKENS"):
        simulator.config_from_env({"NOBOX_SIM_REPLY_TOKENS": "many"})
    with pytest.raises(ValueError, match="reply tokens"):
        simulator.config_from_env({"NOBOX_SIM_REPLY_TOKENS": "0"})
