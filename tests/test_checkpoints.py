"""Checkpoints: every running reply of a process written in one statement per interval."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import DataError
from django.utils import timezone

from chat.models import Message, MessageQuerySet
from chat.replies.writes import _checkpoint
from tests.rows import streaming_reply

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_checkpoint_writes_running_replies_and_leaves_ended_ones(alice):
    first = await streaming_reply(alice, "old", beat_seconds_ago=30)
    second = await streaming_reply(alice, "old", beat_seconds_ago=30)
    ended = await streaming_reply(alice, "kept", beat_seconds_ago=30)
    await Message.objects.filter(pk=ended.pk).aupdate(status=Message.Status.INTERRUPTED)

    await _checkpoint({first.pk: "one ü", second.pk: "two", ended.pk: "late"})

    rows = {m.pk: m async for m in Message.objects.filter(pk__in=[first.pk, second.pk, ended.pk])}
    assert (rows[first.pk].content, rows[second.pk].content) == ("one ü", "two")
    recent = timezone.now() - timedelta(seconds=5)
    beats = {pk: row.heartbeat_at for pk, row in rows.items()}
    assert all(beat is not None for beat in beats.values())
    assert beats[first.pk] > recent and beats[second.pk] > recent  # type: ignore[operator]
    assert rows[ended.pk].content == "kept" and beats[ended.pk] < recent  # type: ignore[operator]


async def test_one_refused_text_does_not_stop_the_others_beating(alice, monkeypatch):
    good, bad = await streaming_reply(alice, "", 30), await streaming_reply(alice, "", 30)
    real = MessageQuerySet.checkpoint

    def refusing(self, texts):  # stands in for a value the database refuses
        if bad.pk in texts:
            raise DataError("value refused")
        return real(self, texts)

    monkeypatch.setattr(MessageQuerySet, "checkpoint", refusing)

    await _checkpoint({good.pk: "fine", bad.pk: "refused"})

    assert (await Message.objects.aget(pk=good.pk)).content == "fine"
    assert (await Message.objects.aget(pk=bad.pk)).content == ""


async def test_text_any_database_refuses_is_made_storable(alice):
    reply = await streaming_reply(alice)

    await _checkpoint({reply.pk: 'a\x00b\ud800c "\udfff" é 😀'})

    assert (await Message.objects.aget(pk=reply.pk)).content == 'a\ufffdb\ufffdc "\ufffd" é 😀'
