"""A token bucket: how many frames a socket may send, steadily and in a burst.

Pure and synchronous: the caller passes the clock (time.monotonic() in the consumer, plain numbers
in tests), so there is nothing to mock and nothing to await."""

from __future__ import annotations

# Float error in the refill (e.g. 0.1 s at 10/s giving 0.9999999999999998 tokens) must not make a
# caller who waited exactly the advertised time wait again for a nanosecond.
EPSILON = 1e-9


class TokenBucket:
    """`burst` tokens to start with, refilled at `rate` per second up to `burst`; each allowed
    call takes one. A refused call takes nothing, so retrying early costs no extra wait."""

    def __init__(self, rate: float, burst: int) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be positive, not {rate}")
        if type(burst) is not int or burst < 1:  # a bool is an int to isinstance
            raise ValueError(f"burst must be a whole number of at least 1, not {burst!r}")
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.last: float | None = None

    def take(self, now: float) -> float:
        """0 if a token was taken at `now`; otherwise the seconds until one will be available."""
        self._refill(now)
        if self.tokens >= 1 - EPSILON:
            self.tokens = max(0.0, self.tokens - 1)
            return 0.0
        return (1 - self.tokens) / self.rate

    def _refill(self, now: float) -> None:
        # A clock that steps back (not monotonic, or a caller's mistake) refills nothing rather
        # than draining the bucket.
        if self.last is not None and now > self.last:
            self.tokens = min(float(self.burst), self.tokens + (now - self.last) * self.rate)
        if self.last is None or now > self.last:
            self.last = now
