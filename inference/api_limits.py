"""Per-token rate and concurrency limits of the scoring API.

Each admitted request takes one *lease*: it counts against the token's rate (requests
in the last minute) and holds one of the token's concurrency slots until it is released
or its lease expires (a dead web process cannot hold a slot for ever). A refusal says
which limit and how long to wait (`Retry-After`).

With ``REDIS_URL`` the bookkeeping is two sorted sets per token, checked and updated by
one Lua script (atomic across every web process; the clock is Redis's own). Without
Redis (the embedded default) it is the ``ApiLease`` table, serialised per token by a row
lock on the token (Postgres) or by SQLite's IMMEDIATE transactions. Django's cache is
not used: the default local-memory cache is per process, so two gunicorn workers would
each allow the full limit.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .api_request import ApiError
from .models import ApiLease, ApiToken

RATE_WINDOW_S = 60

# KEYS: rate set, running set. ARGV: window ms, rate limit, concurrency limit, lease ms, member.
# Returns {0, 0} when admitted, {1, wait ms} over the rate, {2, wait ms} over the concurrency.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, rate, conc, lease = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= rate then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {1, tonumber(oldest[2]) + window - now}
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) >= conc then
  return {2, 0}
end
redis.call('ZADD', KEYS[1], now, ARGV[5])
redis.call('PEXPIRE', KEYS[1], window)
redis.call('ZADD', KEYS[2], now + lease, ARGV[5])
redis.call('PEXPIRE', KEYS[2], lease)
return {0, 0}
"""


@dataclass
class Refused(Exception):
    """Over a limit: which one, the message for the client, seconds to wait."""

    code: str
    message: str
    retry_after: int


@dataclass(frozen=True)
class Limits:
    rate_per_minute: int
    max_concurrent: int
    lease_s: float  # how long a slot stays held if it is never released


def _refusal(kind: int, wait_ms: float, limits: Limits) -> Refused:
    if kind == 1:
        return Refused(
            "rate_limited",
            f"at most {limits.rate_per_minute} requests a minute per token",
            max(1, math.ceil(wait_ms / 1000)),
        )
    return Refused(
        "too_many_concurrent",
        f"at most {limits.max_concurrent} requests at a time per token; wait for one to finish",
        1,
    )


class RedisLimiter:
    name = "redis"

    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        self.script = self.client.register_script(_ACQUIRE)

    @staticmethod
    def _keys(token_id: int) -> list[str]:
        return [f"rprm:api:{token_id}:rate", f"rprm:api:{token_id}:running"]

    def acquire(self, token: ApiToken, limits: Limits) -> str:
        lease = uuid.uuid4().hex
        args: list[int | str] = [RATE_WINDOW_S * 1000, limits.rate_per_minute, limits.max_concurrent,
                int(limits.lease_s * 1000), lease]  # fmt: skip
        kind, wait_ms = self.script(keys=self._keys(token.id), args=args)
        if kind:
            raise _refusal(int(kind), float(wait_ms), limits)
        return lease

    def release(self, token: ApiToken, lease: str) -> None:
        self.client.zrem(self._keys(token.id)[1], lease)

    def in_flight(self, token: ApiToken) -> int:
        """Slots this token holds now (leases not released and not expired)."""
        return int(self.client.zcount(self._keys(token.id)[1], int(time.time() * 1000), "+inf"))


class DatabaseLimiter:
    name = "database"

    def acquire(self, token: ApiToken, limits: Limits) -> str:
        now = timezone.now()
        window_start = now - timedelta(seconds=RATE_WINDOW_S)
        with transaction.atomic():
            # Serialise this token's admissions (SQLite: the IMMEDIATE transaction already does).
            ApiToken.objects.select_for_update().filter(id=token.id).first()
            leases = ApiLease.objects.filter(token=token)
            leases.filter(running_until__lt=now).update(running_until=None)  # expired: never released
            leases.filter(started_at__lt=window_start, running_until__isnull=True).delete()
            recent = leases.filter(started_at__gte=window_start).order_by("started_at")
            if recent.count() >= limits.rate_per_minute:
                oldest = recent[0]  # the count above makes it exist
                wait = (oldest.started_at + timedelta(seconds=RATE_WINDOW_S) - now).total_seconds()
                raise _refusal(1, wait * 1000, limits)
            if leases.filter(running_until__isnull=False).count() >= limits.max_concurrent:
                raise _refusal(2, 0, limits)
            lease = ApiLease.objects.create(
                token=token, started_at=now, running_until=now + timedelta(seconds=limits.lease_s)
            )
        return lease.key

    def release(self, token: ApiToken, lease: str) -> None:
        ApiLease.objects.filter(key=lease).update(running_until=None)

    def in_flight(self, token: ApiToken) -> int:
        return ApiLease.objects.filter(token=token, running_until__gt=timezone.now()).count()


_limiters: dict[str, RedisLimiter | DatabaseLimiter] = {}


def limiter() -> RedisLimiter | DatabaseLimiter:
    """Redis when REDIS_URL is set, else the database (one instance per process)."""
    url = settings.REDIS_URL
    if url not in _limiters:
        _limiters[url] = RedisLimiter(url) if url else DatabaseLimiter()
    return _limiters[url]


# ----- the request's own bounds (settings parsed and validated at start-up) ---------------


def max_tokens() -> int:
    """Per-request budget of generated tokens: steps x K x max_new_tokens (8 x 8 x 4,096)."""
    return int(settings.SCORING_API_MAX_TOKENS)


def request_timeout_s() -> int:
    """Below gunicorn's default 30 s worker timeout and common proxy timeouts."""
    return int(settings.SCORING_API_TIMEOUT_S)


def token_limits() -> Limits:
    """Per-token rate and concurrency; a slot is released when its scoring ends (its calls are
    cancelled at the deadline), the lease only bounds a web process that died holding one."""
    timeout = request_timeout_s()
    return Limits(int(settings.SCORING_API_RATE_PER_MINUTE), int(settings.SCORING_API_MAX_CONCURRENT),
                  lease_s=2 * timeout + 30)  # fmt: skip


def check_budget(args: dict[str, Any], sampling: dict[str, Any]) -> None:
    """Refuse before any work a request that may generate more than the token budget."""
    budget = max_tokens()
    n, k, m = len(args["steps"]), args["n_samples"], sampling["max_new_tokens"]
    if n * k * m > budget:
        raise ApiError(
            413, "over_budget",
            f"this request may generate up to {n} steps x K={k} x {m} max_new_tokens = {n * k * m:,} tokens; "
            f"the budget is {budget:,} tokens per request: send fewer steps, a lower K or a lower max_new_tokens",
        )  # fmt: skip
