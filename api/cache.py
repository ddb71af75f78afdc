"""Aggregate answers (usage, services, models) kept in Redis for a short TTL.

The key is the route and its query string in a canonical order, so "the last hour" asked
twice within the TTL is answered once; answers are the same for every credential that may
read the route (authorisation runs before the cache). Redis failures fall through to the
database, counted as errors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterable

from redis.exceptions import RedisError

from api.metrics import CACHE, REDIS_ERRORS
from common.logging import get_logger
from common.redis_client import AnyRedis

log = get_logger("api.cache")


class AnswerCache:
    def __init__(self, redis: AnyRedis, prefix: str, ttl: int) -> None:
        self.redis = redis
        self.prefix = f"{prefix}api:cache:v1:"
        self.ttl = ttl

    def key(self, route: str, query: Iterable[tuple[str, str]]) -> str:
        canonical = route + "?" + "&".join(f"{k}={v}" for k, v in sorted(query))
        return self.prefix + hashlib.sha256(canonical.encode()).hexdigest()

    async def get_or_compute(self, key: str, compute: Callable[[], Awaitable[bytes]]) -> tuple[bytes, str]:
        """The answer body, and "hit", "miss" or "off"."""
        if self.ttl == 0:
            return await compute(), "off"
        try:
            cached = await self.redis.get(key)
        except (RedisError, OSError) as exc:
            CACHE.labels("error").inc()
            REDIS_ERRORS.labels("cache").inc()
            log.warning("cache read failed", error=str(exc))
            return await compute(), "miss"
        if cached is not None:
            CACHE.labels("hit").inc()
            return cached, "hit"
        CACHE.labels("miss").inc()
        body = await compute()
        try:
            await self.redis.set(key, body, ex=self.ttl)
        except (RedisError, OSError) as exc:
            REDIS_ERRORS.labels("cache").inc()
            log.warning("cache write failed", error=str(exc))
        return body, "miss"
