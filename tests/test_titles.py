"""Automatic titles: one short call after the first reply names the chat, recorded as usage;
a renamed chat keeps its name; a failed call changes nothing anyone sees."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from chat import titles
from chat.database import in_db_pool
from chat.models import Conversation, Usage
from chat.replies import generation
from chat.titles import _running, clean
from tests.protocol import send_frame
from tests.ws import connect, frames_until

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = '"How do *tides* work?"\nAnd why twice a day.'


async def titles_done() -> None:
    await generation.wait_for_running()
    while _running:
        await next(iter(_running))


async def test_the_first_reply_names_the_chat_and_the_call_is_usage(
    alice, alice_token, nobox, settings
):
    settings.TITLE_MODEL = "sim/echo"  # answers with the exchange: its first line is the title
    ws = await connect(alice)
    await ws.send_json_to(send_frame(QUESTION, model="sim/echo"))
    frames = await frames_until(ws, "title")

    ack = next(f for f in frames if f["type"] == "ack")
    assert ack["title"].startswith('"How do *tides* work?" And why')  # the fallback at first
    assert frames[-1] == {
        "type": "title",
        "conversation": ack["conversation"],
        "title": "How do *tides* work?",
    }
    await titles_done()
    chat = await Conversation.objects.aget(public_id=ack["conversation"])
    assert chat.title == "How do *tides* work?"
    record = await Usage.objects.aget(kind="title")
    assert (record.model, record.user_id, record.conversation_id) == ("sim/echo", alice.pk, chat.pk)
    assert record.total_tokens > 0
    await ws.disconnect()


async def test_a_chat_renamed_before_its_title_came_keeps_its_name(
    alice, alice_token, nobox, settings, monkeypatch
):
    settings.TITLE_MODEL = "sim/echo"
    real_start = titles.start
    renames: list[asyncio.Future[None]] = []

    async def rename_then_name(hub: Any, reply: Any, token: Any) -> None:
        await in_db_pool(rename)(reply.conversation_id)  # the person was quicker
        real_start(hub, reply, token)

    def rename(pk: int) -> None:
        Conversation.objects.filter(pk=pk).update(title="Mine")

    monkeypatch.setattr(
        titles,
        "start",
        lambda hub, reply, token: renames.append(
            asyncio.ensure_future(rename_then_name(hub, reply, token))
        ),
    )
    ws = await connect(alice)
    await ws.send_json_to(send_frame(QUESTION, model="sim/echo"))
    await frames_until(ws, "done")
    await generation.wait_for_running()
    await asyncio.gather(*renames)
    await titles_done()

    assert (await Conversation.objects.aget()).title == "Mine"
    assert not await Usage.objects.filter(kind="title").aexists()
    await ws.disconnect()


async def test_a_failed_title_call_keeps_the_fallback_quietly(alice, alice_token, nobox, settings):
    settings.TITLE_MODEL = "sim/server-error"
    ws = await connect(alice)
    await ws.send_json_to(send_frame(QUESTION, model="sim/echo"))
    frames = await frames_until(ws, "done")
    await titles_done()

    assert (await Conversation.objects.aget()).title.startswith('"How do *tides* work?"')
    assert not [f for f in frames if f["type"] in ("title", "error")]
    assert await ws.receive_nothing(timeout=0.3)
    await ws.disconnect()


@pytest.mark.parametrize(
    ("answer", "title"),
    [
        ("Ocean Tides Explained", "Ocean Tides Explained"),
        ('"Ocean Tides Explained."\n\nHope this helps!', "Ocean Tides Explained"),
        ("Title: **Moon and tides**", "Moon and tides"),
        ("\n\n# Tides  and   the moon\n", "Tides and the moon"),
        ("x" * 200, "x" * 80),
        ("", ""),
    ],
)
def test_a_models_answer_becomes_a_clean_title(answer: str, title: str) -> None:
    assert clean(answer) == title
