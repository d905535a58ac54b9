"""The sans-I/O relay pieces: the coalescer and the per-socket cursor, case by case."""

from __future__ import annotations

import itertools
import random

import pytest

from chat.replies.relay import (
    Coalescer,
    LoopDelay,
    Piece,
    RelayCursor,
    Snapshot,
    flush_interval,
)

# --- Coalescer ---------------------------------------------------------------------------------


def test_the_first_text_goes_out_at_once():
    coalescer = Coalescer(interval=0.03)
    assert coalescer.add("Hel", now=10.0) == Piece(0, "Hel")


def test_text_arriving_within_the_interval_waits_and_goes_out_as_one_piece():
    coalescer = Coalescer(interval=0.03)
    coalescer.add("a", now=10.0)
    assert coalescer.add("b", now=10.01) is None
    assert coalescer.add("c", now=10.02) is None
    assert coalescer.flush_delay(10.02) == pytest.approx(0.01)
    assert coalescer.flush(now=10.03) == Piece(1, "bc")


def test_text_after_a_quiet_spell_goes_out_at_once():
    coalescer = Coalescer(interval=0.03)
    coalescer.add("a", now=10.0)
    assert coalescer.add("b", now=10.5) == Piece(1, "b")


def test_flushing_with_nothing_pending_publishes_nothing():
    coalescer = Coalescer(interval=0.03)
    assert coalescer.flush(now=1.0) is None
    coalescer.add("a", now=1.0)
    assert coalescer.flush(now=2.0) is None


def test_empty_text_is_ignored():
    coalescer = Coalescer(interval=0.03)
    assert coalescer.add("", now=1.0) is None
    assert not coalescer.has_pending


def test_text_counts_pending_text_but_published_text_does_not():
    coalescer = Coalescer(interval=0.03)
    coalescer.add("one ", now=1.0)
    coalescer.add("two", now=1.01)
    assert coalescer.text == "one two"
    assert coalescer.published_text == "one "
    assert coalescer.published_length == 4


def test_offsets_count_code_points_not_bytes():
    coalescer = Coalescer(interval=0.0)
    assert coalescer.add("🙂é", now=1.0) == Piece(0, "🙂é")
    assert coalescer.add("x", now=2.0) == Piece(2, "x")


def test_pieces_rebuild_the_text_exactly():
    rng = random.Random(7)
    coalescer = Coalescer(interval=0.03)
    now, pieces, sent = 0.0, [], []
    for _ in range(500):
        now += rng.choice([0.001, 0.005, 0.02, 0.1])
        text = rng.choice(["a", "bc", "🙂", " ", "ü"])
        sent.append(text)
        piece = coalescer.add(text, now)
        if piece is None and coalescer.flush_delay(now) <= 0:
            piece = coalescer.flush(now)
        if piece:
            pieces.append(piece)
    if (last := coalescer.flush(now + 1)) is not None:
        pieces.append(last)
    rebuilt = ""
    for piece in pieces:
        assert piece.offset == len(rebuilt)
        rebuilt += piece.text
    assert rebuilt == "".join(sent) == coalescer.published_text
    assert len(pieces) < len(sent)


# --- RelayCursor -------------------------------------------------------------------------------


def test_a_socket_that_saw_the_start_relays_pieces_as_they_come():
    cursor = RelayCursor.from_start()
    assert cursor.on_piece(Piece(0, "ab")) == [Piece(0, "ab")]
    assert cursor.on_piece(Piece(2, "cd")) == [Piece(2, "cd")]
    assert cursor.sent == 4 and not cursor.needs_sync


def test_a_duplicate_piece_is_dropped():
    cursor = RelayCursor.from_start()
    cursor.on_piece(Piece(0, "ab"))
    assert cursor.on_piece(Piece(0, "ab")) == []
    assert cursor.sent == 2


def test_an_overlapping_piece_sends_only_what_is_new():
    cursor = RelayCursor.from_start()
    cursor.on_piece(Piece(0, "abc"))
    assert cursor.on_piece(Piece(1, "bcde")) == [Piece(3, "de")]


def test_a_gap_holds_the_piece_and_asks_for_a_snapshot():
    cursor = RelayCursor.from_start()
    cursor.on_piece(Piece(0, "ab"))
    assert cursor.on_piece(Piece(4, "ef")) == []
    assert cursor.needs_sync
    # The snapshot fills the hole as a delta (the browser keeps what it has), then the held
    # piece follows on.
    assert cursor.on_snapshot("abcd") == [Piece(2, "cd"), Piece(4, "ef")]
    assert (cursor.sent, cursor.needs_sync, cursor.held) == (6, False, [])


def test_a_gap_filled_by_the_missing_piece_needs_no_snapshot():
    cursor = RelayCursor.from_start()
    cursor.on_piece(Piece(0, "ab"))
    cursor.on_piece(Piece(4, "ef"))
    assert cursor.on_piece(Piece(2, "cd")) == [Piece(2, "cd"), Piece(4, "ef")]
    assert not cursor.needs_sync


def test_a_late_joiner_holds_pieces_until_its_snapshot():
    cursor = RelayCursor()
    assert cursor.on_piece(Piece(5, "fg")) == []
    assert not cursor.needs_sync  # it is waiting for the snapshot it asked for already
    assert cursor.on_snapshot("abcde") == [Snapshot("abcde"), Piece(5, "fg")]
    assert cursor.sent == 7


def test_a_late_joiner_drops_held_pieces_the_snapshot_already_covers():
    cursor = RelayCursor()
    cursor.on_piece(Piece(0, "ab"))
    cursor.on_piece(Piece(2, "cd"))
    assert cursor.on_snapshot("abcde") == [Snapshot("abcde")]
    assert not cursor.held


def test_a_late_joiner_gets_the_tail_of_a_piece_that_straddles_its_snapshot():
    cursor = RelayCursor()
    cursor.on_piece(Piece(3, "defg"))
    assert cursor.on_snapshot("abcde") == [Snapshot("abcde"), Piece(5, "fg")]


def test_a_snapshot_shorter_than_what_was_sent_changes_nothing():
    cursor = RelayCursor.from_start()
    cursor.on_piece(Piece(0, "abcdef"))
    assert cursor.on_snapshot("abc") == []
    assert cursor.sent == 6


def test_a_late_joiner_with_a_hole_after_its_snapshot_asks_again():
    cursor = RelayCursor()
    cursor.on_piece(Piece(8, "ij"))
    assert cursor.on_snapshot("abcde") == [Snapshot("abcde")]
    assert cursor.needs_sync and cursor.held == [Piece(8, "ij")]
    assert cursor.on_snapshot("abcdefgh") == [Piece(5, "fgh"), Piece(8, "ij")]
    assert not cursor.needs_sync


def test_rewinding_after_dropped_frames_refills_from_the_next_snapshot():
    cursor = RelayCursor.from_start()
    cursor.on_piece(Piece(0, "ab"))
    cursor.on_piece(Piece(2, "cd"))
    cursor.rewind(2)  # the frame for "cd" never left
    assert cursor.needs_sync and cursor.sent == 2
    assert cursor.on_piece(Piece(4, "ef")) == []
    assert cursor.on_snapshot("abcdef") == [Piece(2, "cdef")]


def test_rewinding_past_what_was_sent_changes_nothing():
    cursor = RelayCursor.from_start()
    cursor.on_piece(Piece(0, "ab"))
    cursor.rewind(5)
    assert cursor.sent == 2 and not cursor.needs_sync


@pytest.mark.parametrize("seed", range(20))
def test_any_order_with_duplicates_and_losses_ends_exactly_on_the_text(seed):
    """Whatever the network does to the pieces, what the socket is sent follows on exactly and,
    after a final snapshot, is the whole text."""
    rng = random.Random(seed)
    text = "".join(rng.choice("abcdefgh🙂 ") for _ in range(200))
    cuts = sorted(rng.sample(range(1, len(text)), 30))
    pieces = [Piece(a, text[a:b]) for a, b in itertools.pairwise([0, *cuts, len(text)])]
    arrivals = [p for p in pieces if rng.random() > 0.1]  # some lost
    arrivals += rng.sample(pieces, 5)  # some twice
    rng.shuffle(arrivals)
    cursor = RelayCursor.from_start() if rng.random() < 0.5 else RelayCursor()
    shown = ""
    outputs = []
    for piece in arrivals:
        outputs += cursor.on_piece(piece)
        if rng.random() < 0.1:
            outputs += cursor.on_snapshot(text[: rng.randrange(len(text))])
    outputs += cursor.on_snapshot(text)
    for output in outputs:
        if isinstance(output, Snapshot):
            shown = output.text
        else:
            assert output.offset == len(shown), "a gap or an overlap reached the socket"
            shown += output.text
    assert shown == text
    assert not cursor.needs_sync and not cursor.held


def test_the_flush_interval_stretches_only_when_the_loop_runs_late():
    assert flush_interval(0.03, 0.0, 0.25) == 0.03  # keeping up: the base, however many replies
    assert flush_interval(0.03, 0.02, 0.25) == pytest.approx(0.07)
    assert flush_interval(0.03, 1.0, 0.25) == 0.25  # never longer than the cap


def test_the_loop_delay_follows_what_it_observes_and_forgets_it():
    delay = LoopDelay(weight=0.5)
    delay.observe(0.1)
    delay.observe(0.1)
    assert delay.value == pytest.approx(0.075)
    for _ in range(20):
        delay.observe(-0.001)  # early or on time counts as no delay
    assert delay.value < 0.0001


def test_a_longer_interval_means_fewer_pieces_for_the_same_text():
    def pieces(interval: float) -> int:
        coalescer, count = Coalescer(interval), 0
        for k in range(100):  # a token every 20 ms
            count += coalescer.add("tok ", k * 0.02) is not None
        return count + (coalescer.flush(2.0) is not None)

    assert pieces(0.12) < pieces(0.06) < pieces(0.03)


async def test_a_generation_whose_timer_runs_late_waits_longer_for_its_next_piece(monkeypatch):
    import asyncio
    import time

    from chat.replies import generation

    monkeypatch.setattr(generation, "loop_delay", LoopDelay())
    published: list[str] = []

    class Hub:
        def publish(self, conversation: str, event: dict[str, str]) -> None:
            published.append(event["text"])

    reply = generation.Generation(Hub(), 1, "reply", "conversation")  # type: ignore[arg-type]
    base = reply.text.interval
    reply._add("first ")  # goes out at once
    reply._add("second ")  # waits for the timer
    time.sleep(0.1)  # the loop is busy: the timer will run about 70 ms late
    await asyncio.sleep(0.01)
    assert published == ["first ", "second "]
    assert generation.loop_delay.value > 0.005
    assert reply.text.interval > base
