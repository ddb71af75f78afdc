"""Requests per credential per window, counted in Redis so every API replica shares them.

A fixed window that starts at a credential's first request: one INCR and, on the first,
a PEXPIRE, done atomically in a script. The answer carries the RateLimit header fields
(draft-ietf-httpapi-ratelimit-headers) and, when refused, 429 with Retry-After. When Redis
does not answer the request is let through (counted and logged): the limit protects the
database, and refusing every read because the cache server hiccupped would be worse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from redis.exceptions import RedisError

from api.metrics import RATE_LIMITED, REDIS_ERRORS
from api.problems import Problem
from common.logging import get_logger
from common.redis_client import AnyRedis

log = get_logger("api.ratelimit")

_COUNT = """
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
    ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""


@dataclass(frozen=True)
class Quota:
    limit: int
    remaining: int
    reset_seconds: int
    window: int

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
            "RateLimit-Policy": f"{self.limit};w={self.window}",
        }


class RateLimiter:
    def __init__(self, redis: AnyRedis, prefix: str, limit: int, window: int) -> None:
        self.limit = limit
        self.window = window
        self.prefix = f"{prefix}api:ratelimit:"
        self._script = redis.register_script(_COUNT)

    async def take(self, identity: str) -> Quota | None:
        """Count one request; raise 429 when over the limit. None when limits are off or Redis failed."""
        if self.limit == 0:
            return None
        try:
            count, ttl_ms = await self._script(keys=[self.prefix + identity[:200]], args=[self.window * 1000])
        except (RedisError, OSError) as exc:
            REDIS_ERRORS.labels("ratelimit").inc()
            log.warning("rate limit not applied: redis failed", error=str(exc))
            return None
        quota = Quota(self.limit, max(0, self.limit - int(count)), max(1, math.ceil(int(ttl_ms) / 1000)), self.window)
        if count > self.limit:
            RATE_LIMITED.inc()
            raise Problem(
                429, "Too many requests",
                f"at most {self.limit} requests per {self.window} s per credential; retry in {quota.reset_seconds} s",
                headers={**quota.headers(), "Retry-After": str(quota.reset_seconds)},
            )
        return quota
