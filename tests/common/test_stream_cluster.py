"""The span streams on a real Redis Cluster: shard keys, scripts, readiness and WAIT.

The oracle for where a key lives is the cluster itself (CLUSTER KEYSLOT, CLUSTER SLOTS), and
for what a replica holds, the replica read directly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from common.ops import run_checks
from common.redis_client import AnyRedis, connect
from common.stream import GROUP, NotReplicated, SpanStream, StreamEntry, StreamKeys
from tests.infra import PrivateRedisCluster
from tests.support import async_wait_for


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedisCluster]:
    """One cluster for the tests here that kill nothing (3 masters, 3 replicas)."""
    cluster = PrivateRedisCluster(tmp_path_factory.mktemp("cluster"), masters=3, replicas_per_master=1).start()
    yield cluster
    cluster.stop()


@pytest.fixture
async def client(shared_cluster: PrivateRedisCluster) -> AsyncIterator[AnyRedis]:
    redis = connect(shared_cluster.url, 2.0)
    yield redis
    await redis.aclose()


@pytest.mark.parametrize("shards", [3, 6])
def test_each_shard_keeps_its_keys_on_one_master_and_shards_spread_evenly(shared_cluster: PrivateRedisCluster, shards: int) -> None:
    keys = StreamKeys("spread:", shards)
    per_master: dict[int, int] = {}
    for n in range(shards):
        master = shared_cluster.master_of_key(keys.stream(n))
        assert shared_cluster.master_of_key(keys.backlog(n)) is master
        assert shared_cluster.master_of_key(keys.shard_key(n, "anything")) is master
        per_master[master.port] = per_master.get(master.port, 0) + 1
    assert sorted(per_master.values()) == [shards // 3] * 3


async def test_publish_ack_and_backlog_work_across_shards(client: AnyRedis) -> None:
    stream = SpanStream(client, StreamKeys("scripts:", 6))
    await stream.ensure_group()
    published = {n: await stream.publish(n, StreamEntry(b"body", n + 1, 0)) for n in range(6)}
    assert await stream.backlog() == sum(range(1, 7))
    for n in range(6):
        answer = await client.xreadgroup(GROUP, "c", {stream.keys.stream(n): ">"}, count=10)
        assert [entry_id for entry_id, _ in answer[0][1]] == [published[n]]
    assert await stream.ack(2, [(published[2], 3)]) == 3
    assert await stream.ack(2, [(published[2], 3)]) == 0  # acknowledged once only
    assert await stream.backlog() == sum(range(1, 7)) - 3
    assert await stream.shard_problems() is None


async def test_with_wait_an_answered_entry_is_already_on_the_replica(shared_cluster: PrivateRedisCluster, client: AnyRedis) -> None:
    stream = SpanStream(client, StreamKeys("wait:", 3), wait_replicas=1, wait_timeout_ms=2000)
    await stream.ensure_group()
    assert await stream.shard_problems() is None
    for n in range(3):
        entry_id = await stream.publish(n, StreamEntry(b"replicated", 1, 0))
        replica = shared_cluster.replica_of(shared_cluster.master_of_key(stream.keys.stream(n)))
        reader = replica.client()
        try:
            reader.execute_command("READONLY")
            assert [i for i, _ in reader.xrange(stream.keys.stream(n))] == [entry_id]
        finally:
            reader.close()


async def test_a_dead_master_makes_its_shard_unready_until_its_replica_takes_over(redis_cluster_with_replicas: PrivateRedisCluster) -> None:
    cluster = redis_cluster_with_replicas
    redis = connect(cluster.url, 1.0)
    try:
        stream = SpanStream(redis, StreamKeys("ready:", 3))
        await stream.ensure_group()
        waiting = SpanStream(redis, StreamKeys("ready:", 3), wait_replicas=1, wait_timeout_ms=500)
        assert await stream.shard_problems() is None and await waiting.shard_problems() is None
        victim = cluster.master_of_key(stream.keys.stream(1))
        victim.kill()
        # What /ready runs: the check under its timeout (the client retries while the cluster
        # has not noticed the failure yet, so a slow answer is a failed check too).
        reason = await async_wait_for(lambda: _problem(stream), 10, 0.1, "shard 1 to be reported")
        assert reason.startswith("shard(s) 1 of 3") or reason.startswith("timed out"), reason
        assert await async_wait_for(lambda: _healthy(stream), 30, 0.2, "the promoted replica to serve shard 1")
        await stream.publish(1, StreamEntry(b"after", 1, 0))
        # The promoted master has no replica left: WAIT cannot be met, and /ready says why.
        assert "0 replica(s) connected" in (await _problem(waiting) or "")
        with pytest.raises(NotReplicated):
            await waiting.publish(1, StreamEntry(b"unreplicated", 1, 0))
        victim_restarted = cluster.restart(victim)  # rejoins as a replica of the promoted master
        assert victim_restarted
        assert await async_wait_for(lambda: _healthy(waiting), 30, 0.2, "shard 1 to have a replica again")
        await waiting.publish(1, StreamEntry(b"replicated again", 1, 0))
    finally:
        await redis.aclose()


async def _problem(stream: SpanStream) -> str | None:
    result = (await run_checks({"redis": stream.shard_problems}))["redis"]
    return None if result == "ok" else result


async def _healthy(stream: SpanStream) -> bool:
    return await _problem(stream) is None


def test_legacy_and_tagged_stream_keys_are_recognised() -> None:
    keys = StreamKeys("p:", 3)
    assert all(keys.is_stream_key(k) for k in ["p:otlp:spans:0", "p:otlp:spans:12", *keys.streams(), "p:otlp:spans:{0}"])
    assert not any(keys.is_stream_key(k) for k in [
        keys.dlq, keys.backlog(0), "p:otlp:spans:0:backlog", "q:otlp:spans:0", "p:otlp:logs:{0}", "p:otlp:spans:{a}b}",
    ])
