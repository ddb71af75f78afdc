"""Redis holds only what is not yet written: ten times its maxmemory goes through a real
collector and writer on a Redis with `maxmemory 25mb` and `noeviction`, and ingest never
stops for good. While Redis is full the collector answers the retryable 503 and its /ready
says why; once the writer has drained it, everything is stored and the stream is empty."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_sync
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from common.otlp import key_value as kv
from common.stream import StreamKeys
from tests.collector.process import collector_process
from tests.conftest import Database
from tests.infra import PrivateRedis
from tests.storage.support import span_counts, writer_process
from tests.support import ServiceProcess, http_get, http_post, wait_for

pytestmark = pytest.mark.e2e
MAXMEMORY = 25 * 1024 * 1024
SPAN_BYTES = 10_000
SPANS_PER_REQUEST = 200
REQUESTS = 130  # 130 x 200 x 10 KB = 260 MB, over ten times maxmemory


@pytest.fixture
def small_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis", extra=("--maxmemory", str(MAXMEMORY), "--maxmemory-policy", "noeviction")).start()
    yield server
    server.stop()


def export_request(n: int) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(kv("service.name", "memory-test"))
    scope = rs.scope_spans.add()
    now = time.time_ns()
    filler = "the quick brown fox jumps over the lazy dog " * (SPAN_BYTES // 44)  # Redis keeps it as is; PostgreSQL compresses it
    for i in range(SPANS_PER_REQUEST):
        span = scope.spans.add(trace_id=os.urandom(16), span_id=os.urandom(8), name=f"op-{n}-{i}",
                               start_time_unix_nano=now, end_time_unix_nano=now + 1000)
        span.attributes.append(kv("gen_ai.input.messages", os.urandom(8).hex() + filler))
    return req


def test_ten_times_maxmemory_goes_through_and_redis_keeps_only_unwritten_data(
    fresh_database: Database, redis_prefix: str, small_redis: PrivateRedis, tmp_path: Path,
) -> None:
    client = redis_sync.Redis.from_url(small_redis.url)
    keys = StreamKeys(redis_prefix, 1)
    collector = collector_process(redis_prefix, tmp_path, small_redis.url, RETRY_AFTER="1", ENABLE_PII_DETECTION="false")
    writer = writer_process(fresh_database, redis_prefix, tmp_path, REDIS_URL=small_redis.url, BATCH_SIZE="1000")
    services: list[ServiceProcess] = [collector.service.start(), writer]
    ready_url = f"http://127.0.0.1:{collector.service.metrics_port}/ready"
    try:
        collector.service.wait_ready()
        # No writer yet: Redis fills up, the collector refuses (503, retryable) and its /ready
        # says why.
        sent = 0
        while True:
            status, headers, answer = http_post(collector.http_url, export_request(sent).SerializeToString())
            if status != 200:
                break
            sent += 1
        assert status == 503 and headers.get("Retry-After") and b"maxmemory" in answer, (status, answer[:300])
        assert sent * SPANS_PER_REQUEST * SPAN_BYTES < 2 * MAXMEMORY
        status, ready = http_get(ready_url)
        assert status == 503 and b"out of memory" in ready, ready

        # The writer drains it while the exports keep coming, retried as an OTLP exporter does.
        writer.start().wait_ready()
        refusals = 0
        for n in range(sent, REQUESTS):
            body = export_request(n).SerializeToString()
            deadline = time.monotonic() + 60
            while True:
                status, headers, answer = http_post(collector.http_url, body)
                if status == 200:
                    break
                assert status in (429, 503) and headers.get("Retry-After"), (status, answer[:200])
                refusals += 1
                assert time.monotonic() < deadline, "ingest stopped for good"
                time.sleep(0.2)
        total = REQUESTS * SPANS_PER_REQUEST
        wait_for(lambda: span_counts(fresh_database.admin_dsn)[0] == total, 120, 0.2, "every span stored")
        wait_for(lambda: client.xlen(keys.stream(0)) == 0, 10, 0.1, "written entries to leave the stream")
        assert int(client.get(keys.backlog(0)) or 0) == 0
        assert int(client.info("memory")["used_memory"]) < 5 * 1024 * 1024  # what remains is Redis itself
        assert http_get(ready_url)[0] == 200
        assert writer.proc is not None and writer.proc.poll() is None
    finally:
        for service in services:
            service.kill()
        client.close()


def test_the_writer_says_on_ready_when_redis_refuses_writes(
    fresh_database: Database, redis_prefix: str, small_redis: PrivateRedis, tmp_path: Path,
) -> None:
    client = redis_sync.Redis.from_url(small_redis.url)
    writer = writer_process(fresh_database, redis_prefix, tmp_path, REDIS_URL=small_redis.url)
    try:
        writer.start().wait_ready()
        ready_url = f"http://127.0.0.1:{writer.metrics_port}/ready"
        filler = f"{redis_prefix}filler"
        with pytest.raises(redis_sync.exceptions.ResponseError, match="OOM|maxmemory"):
            for n in range(100):  # 1 MB at a time until Redis refuses
                client.rpush(filler, os.urandom(1 << 20))
        status, body = http_get(ready_url)
        assert status == 503 and b"redis refuses writes: out of memory" in body, body
        client.delete(filler)
        wait_for(lambda: http_get(ready_url)[0] == 200, 10, 0.1, "the writer ready again once Redis has room")
    finally:
        writer.kill()
        client.close()
