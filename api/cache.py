"""Aggregate answers (usage, services, models) kept in Redis for a short TTL.

The key is the route and the request as parsed (every declared parameter, defaults filled
in, as canonical JSON), never the raw query text: `?model=a%26provider%3Db` (one model
named "a&provider=b") and `?model=a&provider=b` are different requests with different keys.
"The last hour" asked twice within the TTL is answered once (an absent start or end is part
of the key as absent); answers are the same for every credential that may
read the route (authorisation runs before the cache). Redis failures fall through to the
database, counted as errors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson

from redis.exceptions import RedisError

from api.metrics import CACHE, REDIS_ERRORS
from common.logging import get_logger
from common.redis_client import AnyRedis

log = get_logger("api.cache")


class AnswerCache:
    def __init__(self, redis: AnyRedis, prefix: str, ttl: int) -> None:
        self.redis = redis
        self.prefix = f"{prefix}api:cache:v2:"
        self.ttl = ttl

    def key(self, route: str, values: Mapping[str, Any]) -> str:
        canonical = orjson.dumps([route, values], option=orjson.OPT_SORT_KEYS)
        return self.prefix + hashlib.sha256(canonical).hexdigest()

    async def put(self, key: str, body: bytes) -> None:
        """Store an answer computed elsewhere (a failure is counted and logged, not raised)."""
        if self.ttl == 0:
            return
        try:
            await self.redis.set(key, body, ex=self.ttl)
        except (RedisError, OSError) as exc:
            REDIS_ERRORS.labels("cache").inc()
            log.warning("cache write failed", error=str(exc))

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
