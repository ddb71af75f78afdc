"""How the writer reads its shards: one XREADGROUP per shard in flight, and the group dividing
entries among writers, one of which may join at any time."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis as redis_sync

from common.redis_client import AnyRedis, connect
from common.stream import SpanStream, StreamEntry, StreamKeys
from storage.consumer import READ_BLOCK_MS, StreamConsumer
from tests.conftest import REDIS_URL, Database
from tests.storage.support import Publisher, request, span_counts, trace_ids, writer_process
from tests.support import ServiceProcess, wait_for


@pytest.fixture
async def redis() -> AsyncIterator[AnyRedis]:
    client = connect(REDIS_URL, 5.0, read_timeout=7.0)
    yield client
    await client.aclose()


async def test_an_entry_on_one_shard_does_not_wait_for_the_blocked_reads_of_the_others(redis: AnyRedis, redis_prefix: str) -> None:
    stream = SpanStream(redis, StreamKeys(redis_prefix, 3))
    await stream.ensure_group()
    consumer = StreamConsumer(redis, stream, "reader", 60_000)
    try:
        assert await consumer.read(10, block_ms=200) == []  # every shard's read now blocks in flight
        entry_id = await stream.publish(2, StreamEntry(b"x", 1, 0))
        started = time.monotonic()
        deliveries = await consumer.read(10, block_ms=5000)
        took = time.monotonic() - started
        assert [(d.stream, d.entry_id) for d in deliveries] == [(stream.keys.stream(2), entry_id)]
        assert took < READ_BLOCK_MS / 1000 / 2, f"waited {took:.2f} s for an entry already there"
        entry_id = await stream.publish(0, StreamEntry(b"y", 1, 0))  # a read of shard 0 is still in flight
        assert [d.entry_id for d in await consumer.read(10, block_ms=5000)] == [entry_id]
    finally:
        await consumer.close()


@pytest.fixture
def started() -> Iterator[list[ServiceProcess]]:
    processes: list[ServiceProcess] = []
    yield processes
    for process in processes:
        process.kill()


@pytest.mark.e2e
def test_a_writer_that_joins_takes_part_of_every_shard_without_restarting_the_other(
    fresh_database: Database, redis_prefix: str, redis_client: redis_sync.Redis, tmp_path: Path,
    started: list[ServiceProcess],
) -> None:
    keys = StreamKeys(redis_prefix, 3)
    publisher = Publisher(redis_client, keys)
    first = writer_process(fresh_database, redis_prefix, tmp_path, "first", STREAM_SHARDS="3", CONSUMER_NAME="first").start()
    started.append(first)
    first.wait_ready()
    for _ in range(10):
        publisher.publish(request(trace_ids(2)))
    wait_for(lambda: span_counts(fresh_database.admin_dsn)[0] == 60, 20, 0.05, "the first writer to store alone")
    second = writer_process(fresh_database, redis_prefix, tmp_path, "second", STREAM_SHARDS="3", CONSUMER_NAME="second").start()
    started.append(second)
    second.wait_ready()
    acked_before = first.metric("observatory_storage_entries_acked_total")
    for _ in range(300):
        publisher.publish(request(trace_ids(2)))
    wait_for(lambda: span_counts(fresh_database.admin_dsn) == (60 + 1800, 60 + 1800), 60, 0.1, "every span stored once")
    assert second.metric("observatory_storage_entries_acked_total") > 0
    assert first.metric("observatory_storage_entries_acked_total") > acked_before
    assert first.proc is not None and first.proc.poll() is None  # never restarted
