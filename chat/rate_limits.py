"""Per-person rate limits on sends: SEND_PER_MINUTE messages in any sliding minute, and at most
CONCURRENT_REPLIES replies being written at once, counted over every tab, device and process.

Both are decided in the send's transaction with the person's row locked (chat.limits):
- replies at once: the `streaming` rows themselves, so a process that dies leaves no phantom
  count (the sweep ends its replies);
- sends per minute: a sliding window in Redis when REDIS_URL is set (one atomic script, on Redis's
  own clock), else the person's messages of the last minute in the database. An unreachable Redis
  falls back to the database rather than letting everything through.
A refusal says when to retry (`retry_after`, seconds).
"""

from __future__ import annotations

import logging
import math
import threading
from datetime import datetime, timedelta

import redis
from django.conf import settings
from django.utils.translation import gettext_lazy as _
from django_stubs_ext import StrOrPromise

from chat.languages import translated_later
from chat.models import Message, User

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60.0
# Replies take seconds to minutes; a page told to retry sooner only gets refused again.
CONCURRENT_RETRY_SECONDS = 5.0


class RateLimited(Exception):
    code = "rate_limited"

    def __init__(self, message: StrOrPromise, retry_after: float) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


def too_many_at_once(running: int) -> RateLimited:
    """The refusal of a send while `running` of the person's replies are being written."""
    return RateLimited(
        translated_later(
            _(
                "%(running)d replies are being written for you already (at most %(limit)d "
                "at once). Wait for one to finish."
            ),
            running=running,
            limit=settings.CONCURRENT_REPLIES,
        ),
        CONCURRENT_RETRY_SECONDS,
    )


def too_many_sends(wait: float) -> RateLimited:
    """The refusal of a send over SEND_PER_MINUTE, which fits again in `wait` seconds."""
    return RateLimited(
        translated_later(
            _(
                "You can send %(count)d messages a minute. Wait %(wait)d s; the page will "
                "send it then."
            ),
            count=settings.SEND_PER_MINUTE,
            wait=math.ceil(wait),
        ),
        round(wait, 2),
    )


def send_wait(user: User, client_id: str, earlier: int, stored: int, counted_at: datetime) -> float:
    """Seconds until this send fits in the person's minute (0: it fits, and is counted; a
    resent `client_id` counts once). Redis counts when it is set; without Redis, or with Redis
    failing, the database does: `stored`, the person's stored sends of the minute before
    `counted_at`, plus `earlier`, the sends of the same group admitted before this one."""
    if settings.REDIS_URL:
        try:
            return _redis_wait(user.pk, client_id)
        except (redis.RedisError, OSError) as error:
            log.warning("send rate limit: Redis unavailable (%s); counting in the database", error)
    if stored + earlier < settings.SEND_PER_MINUTE:
        return 0.0
    return _database_wait(user, counted_at, settings.SEND_PER_MINUTE - earlier)


def _database_wait(user: User, counted_at: datetime, keep: int) -> float:
    """Seconds from `counted_at` until fewer than `keep` of the person's stored sends are left
    in the window: until the keep-th most recent one leaves it. Measured from the moment the
    sends were counted, not from now: a send that left the window in between must not turn a
    wait of a moment into a wait of a minute."""
    if keep <= 0:
        return WINDOW_SECONDS  # the group's own sends, made just now, fill the minute
    recent = list(
        Message.objects.filter(
            author=user,  # their messages and the replies they regenerated
            created_at__gt=counted_at - timedelta(seconds=WINDOW_SECONDS),
        )
        .order_by("-created_at")
        .values_list("created_at", flat=True)[:keep]
    )
    if len(recent) < keep:
        return 0.01  # counted over the limit: the count and this read disagree only by races
    leaves = recent[-1] + timedelta(seconds=WINDOW_SECONDS)
    return max((leaves - counted_at).total_seconds(), 0.01)


# A sorted set per person: member = the send's client_id, score = when it was admitted. Redis's
# clock, not the processes' (which may disagree), decides the window.
SLIDING_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZSCORE', KEYS[1], ARGV[3]) then return '0' end
if redis.call('ZCARD', KEYS[1]) >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tostring(math.max(tonumber(oldest[2]) + window - now, 0.01))
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('EXPIRE', KEYS[1], math.ceil(window) + 1)
return '0'
"""

_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def _redis_wait(user_pk: int, client_id: str) -> float:
    url = settings.REDIS_URL
    with _clients_lock:
        client = _clients.get(url)
        if client is None:
            client = _clients[url] = redis.Redis.from_url(
                url, socket_connect_timeout=2, socket_timeout=2
            )
    key = f"{settings.REDIS_PREFIX}:sends:{user_pk}"
    answer = client.eval(
        SLIDING_WINDOW, 1, key, WINDOW_SECONDS, settings.SEND_PER_MINUTE, client_id
    )
    return float(answer.decode() if isinstance(answer, bytes) else answer)
