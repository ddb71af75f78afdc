"""Failure counts against the real Redis: counted per entry, cleared (with the entry) by the ack."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from common.stream import SpanStream, StreamEntry, StreamKeys
from storage.consumer import StreamConsumer
from storage.failures import FailureCounts
from tests.conftest import REDIS_URL


def test_failures_count_up_to_the_limit_and_the_ack_clears_them_and_the_entry(redis_prefix: str) -> None:
    async def scenario() -> None:
        redis = Redis.from_url(REDIS_URL)
        try:
            keys = StreamKeys(redis_prefix)
            stream = SpanStream(redis, keys)
            await stream.ensure_group()
            for n in range(2):
                await stream.publish(0, StreamEntry(body=b"x", spans=3, received_ns=n))
            consumer = StreamConsumer(redis, stream, "w", 60_000)
            first, second = await consumer.read(count=2, block_ms=1000)
            failures = FailureCounts(redis, keys, limit=3)
            assert await failures.of([first, second]) == [0, 0]
            assert [await failures.record(first) for _ in range(3)] == [1, 2, 3]
            assert failures.exhausted(3) and not failures.exhausted(2)
            # Reading it again (a restart) does not count.
            assert await consumer.read_own_pending(10) and await failures.of([first, second]) == [3, 0]
            await consumer.ack([first])
            assert await failures.of([first]) == [0]
            assert await redis.xlen(keys.stream(0)) == 1  # the acknowledged entry left the stream
            assert int(await redis.get(keys.backlog(0))) == 3
        finally:
            await redis.aclose()

    asyncio.run(scenario())
