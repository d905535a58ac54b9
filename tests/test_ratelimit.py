"""The token bucket behind the per-socket frame limit, driven with an explicit clock."""

from __future__ import annotations

import random

import pytest

from chat.ratelimit import TokenBucket


def test_a_full_bucket_allows_a_burst_at_once() -> None:
    bucket = TokenBucket(rate=2, burst=5)
    assert [bucket.take(100.0) for _ in range(5)] == [0, 0, 0, 0, 0]


def test_past_the_burst_it_says_how_long_to_wait() -> None:
    bucket = TokenBucket(rate=2, burst=3)
    for _ in range(3):
        bucket.take(0.0)
    assert bucket.take(0.0) == pytest.approx(0.5)


@pytest.mark.parametrize("rate", [10, 3, 7, 49, 0.3])
def test_waiting_the_advertised_time_is_enough(rate: float) -> None:
    # 1/49 * 49 is 0.9999999999999999 in floating point: rounding must not refuse this caller.
    start = 1234.567
    bucket = TokenBucket(rate=rate, burst=1)
    assert bucket.take(start) == 0
    wait = bucket.take(start)
    assert wait == pytest.approx(1 / rate)
    assert bucket.take(start + wait) == 0


def test_waiting_less_is_refused_with_the_rest_of_the_wait() -> None:
    bucket = TokenBucket(rate=1, burst=1)
    bucket.take(0.0)
    assert bucket.take(0.25) == pytest.approx(0.75)
    assert bucket.take(0.75) == pytest.approx(0.25)
    assert bucket.take(1.0) == 0


def test_a_refused_call_takes_nothing() -> None:
    bucket = TokenBucket(rate=1, burst=1)
    bucket.take(0.0)
    for _ in range(100):
        bucket.take(0.5)  # hammering while refused
    assert bucket.take(1.0) == 0


def test_a_slow_rate_means_a_long_wait() -> None:
    bucket = TokenBucket(rate=0.5, burst=1)
    bucket.take(0.0)
    assert bucket.take(0.0) == pytest.approx(2.0)


def test_an_idle_bucket_refills_to_the_burst_and_no_further() -> None:
    bucket = TokenBucket(rate=5, burst=3)
    for _ in range(3):
        bucket.take(0.0)
    allowed = [bucket.take(3600.0) for _ in range(4)]
    assert allowed[:3] == [0, 0, 0]
    assert allowed[3] == pytest.approx(0.2)


def test_a_steady_sender_at_the_rate_is_never_refused() -> None:
    bucket = TokenBucket(rate=10, burst=1)
    assert all(bucket.take(step / 10) == 0 for step in range(1000))


def test_a_sender_slightly_over_the_rate_is_eventually_refused() -> None:
    bucket = TokenBucket(rate=10, burst=5)
    refused = [bucket.take(step / 11) for step in range(200)]
    assert any(wait > 0 for wait in refused)


def test_the_first_call_may_come_at_any_time() -> None:
    assert TokenBucket(rate=1, burst=1).take(-5.0) == 0
    assert TokenBucket(rate=1, burst=1).take(1e9) == 0


def test_a_clock_that_steps_back_refills_nothing_and_never_fails() -> None:
    bucket = TokenBucket(rate=1, burst=2)
    bucket.take(10.0)
    bucket.take(10.0)
    assert bucket.take(5.0) == pytest.approx(1.0)
    # Time moving on again counts from the latest time seen, not from the step back.
    assert bucket.take(10.5) == pytest.approx(0.5)
    assert bucket.take(11.0) == 0


@pytest.mark.parametrize("seed", range(20))
def test_over_any_window_no_more_than_burst_plus_rate_times_its_length_pass(seed: int) -> None:
    rng = random.Random(seed)
    rate, burst = rng.uniform(0.5, 20), rng.randint(1, 10)
    bucket = TokenBucket(rate=rate, burst=burst)
    now, allowed_at = 0.0, []
    for _ in range(500):
        now += rng.expovariate(rate * 2)  # twice as fast as allowed, on average
        wait = bucket.take(now)
        assert wait >= 0
        if wait == 0:
            allowed_at.append(now)
        else:
            assert wait <= 1 / rate + 1e-9
    for i, start in enumerate(allowed_at):
        for j in range(i, len(allowed_at)):
            assert j - i + 1 <= burst + (allowed_at[j] - start) * rate + 1e-6


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (1, 0), (1, -3), (1, 1.5), (1, True)])
def test_it_refuses_a_rate_or_burst_that_means_nothing(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=rate, burst=burst)
