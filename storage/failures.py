"""Failure counts: how many times an entry's write failed for a reason of its own.

An entry goes to the dead-letter stream after MAX_DELIVERIES such failures, counted in a
hash beside its stream (`otlp:spans:{tag}:failures`, entry id -> count) and cleared by the
acknowledging script. Redis's own delivery counter is not used: re-reading a consumer's
pending list after a restart and claiming both raise it, so a few restarts during a
database outage would dead-letter good data. A database outage or a restart never counts.
"""

from __future__ import annotations

from common.redis_client import AnyRedis
from common.stream import StreamKeys
from storage.consumer import Delivery


class FailureCounts:
    def __init__(self, redis: AnyRedis, keys: StreamKeys, limit: int) -> None:
        self.redis = redis
        self.keys = keys
        self.limit = limit

    async def of(self, deliveries: list[Delivery]) -> list[int]:
        """The failure count of each delivery (0 when it never failed)."""
        if not deliveries:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for delivery in deliveries:
            pipe.hget(self.keys.failures_of(delivery.stream), delivery.entry_id)
        return [int(value or 0) for value in await pipe.execute()]

    async def record(self, delivery: Delivery) -> int:
        """One more failure of this entry; returns the count now."""
        return int(await self.redis.hincrby(self.keys.failures_of(delivery.stream), delivery.entry_id.decode(), 1))

    def exhausted(self, count: int) -> bool:
        return count >= self.limit
