"""Our Nobox client against our simulator, in one process (the simulator's ASGI app behind
httpx's ASGI transport): the stand-in the other tests rely on answers in the shapes the client
reads, errors included. The simulator as a real server is tested in test_simulator.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from chat.nobox import (
    BadRequest,
    ChatRequest,
    Completed,
    Delta,
    InsufficientFunds,
    InvalidToken,
    ModelNotFound,
    NoboxClient,
    NoboxError,
    RateLimited,
    RetryPolicy,
    UpstreamError,
    simulator,
)

TOKEN = "sk-sim-contract-0001"
BASE = "http://nobox.test/_f_"
HELLO = [{"role": "user", "content": "Tell me about café culture"}]
NO_RETRY = RetryPolicy(attempts=1)


@pytest.fixture
async def nobox() -> AsyncIterator[NoboxClient]:
    app = simulator.make_app(simulator.SimConfig(tokens_per_second=0, reply_tokens=12))
    # httpx passes the scope as a MutableMapping; the simulator types it as the dict it is.
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport) as http:
        yield NoboxClient(BASE, http, retry=NO_RETRY)


async def test_a_streamed_reply_is_whole_and_matches_the_simulators_text(
    nobox: NoboxClient,
) -> None:
    items = [item async for item in nobox.stream_chat(TOKEN, ChatRequest("sim/echo", HELLO))]

    *deltas, completed = items
    assert all(isinstance(d, Delta) for d in deltas)
    expected = simulator.reply_text(simulator.find_model("sim/echo"), HELLO, 12)
    assert "".join(d.text for d in deltas if isinstance(d, Delta)) == expected
    assert isinstance(completed, Completed)
    assert (completed.finish_reason, completed.model) == ("stop", "sim/echo")
    assert completed.usage is not None and completed.usage.completion_tokens == len(deltas)


async def test_a_whole_completion_has_the_text_the_stream_has(nobox: NoboxClient) -> None:
    request = ChatRequest("gpt-4o", HELLO, max_tokens=5)
    completion = await nobox.complete(TOKEN, request)
    streamed = [item async for item in nobox.stream_chat(TOKEN, request)]

    assert completion.text == "".join(d.text for d in streamed if isinstance(d, Delta))
    assert (completion.finish_reason, completion.model) == ("length", "openai/gpt-4o")
    assert completion.usage is not None and completion.usage.completion_tokens == 5


async def test_the_model_list_parses_with_prices(nobox: NoboxClient) -> None:
    models = {m.id: m for m in await nobox.list_models(TOKEN)}

    assert models.keys() == {m.id for m in simulator.MODELS}
    gpt = models["openai/gpt-4o"]
    assert (gpt.public_id, gpt.name) == ("gpt-4o", "GPT-4o")
    assert gpt.price.prompt is not None and gpt.price.completion is not None


@pytest.mark.parametrize(
    ("token", "model", "error", "code"),
    [
        ("invalid-1", "gpt-4o", InvalidToken, "invalid_token"),
        ("ratelimited-1", "gpt-4o", RateLimited, "rate_limited"),
        ("broke-1", "gpt-4o", InsufficientFunds, "insufficient_funds"),
        (TOKEN, "acme/nope", ModelNotFound, "model_not_found"),
        (TOKEN, "sim/server-error", UpstreamError, "upstream_error"),
        (TOKEN, "sim/html-error", UpstreamError, "upstream_error"),  # a 502 page from a proxy
        (TOKEN, "sim/error-mid-stream", UpstreamError, "upstream_error"),
    ],
)
async def test_each_simulated_failure_is_the_typed_error_the_app_handles(
    nobox: NoboxClient, token: str, model: str, error: type[NoboxError], code: str
) -> None:
    with pytest.raises(NoboxError) as caught:
        async for _ in nobox.stream_chat(token, ChatRequest(model, HELLO)):
            pass

    assert type(caught.value) is error
    assert caught.value.code == code
    assert token not in str(caught.value)


async def test_a_request_the_simulator_refuses_is_a_bad_request(nobox: NoboxClient) -> None:
    with pytest.raises(BadRequest):
        await nobox.complete(TOKEN, ChatRequest("gpt-4o", HELLO, temperature=2.5))
