"""Redis restarts while the writer runs: it reports not-ready, reconnects and drains."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_sync

from common.stream import StreamKeys
from tests.conftest import Database
from tests.storage.support import Publisher, pending, publish_traces, span_counts, writer_process
from tests.infra import PrivateRedis
from tests.support import http_get, wait_for

pytestmark = pytest.mark.e2e



@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    # Append-only with fsync on every write: the stream must survive the restart.
    server = PrivateRedis(tmp_path / "redis", appendfsync="always").start()
    yield server
    server.stop()


def test_writer_reconnects_after_redis_restarts(fresh_database: Database, private_redis: PrivateRedis, tmp_path: Path) -> None:
    client = redis_sync.Redis.from_url(private_redis.url)
    keys = StreamKeys("", 1)
    publisher = Publisher(client, keys)
    writer = writer_process(fresh_database, "", tmp_path, REDIS_URL=private_redis.url, REDIS_TIMEOUT="1").start()
    try:
        writer.wait_ready()
        total = publish_traces(publisher, entries=5)
        wait_for(lambda: span_counts(fresh_database.admin_dsn)[0] == total, 20, 0.05, "the first spans")
        private_redis.stop()
        wait_for(lambda: http_get(f"http://127.0.0.1:{writer.metrics_port}/ready")[0] == 503, 20, 0.1, "not ready")
        private_redis.start()
        total += publish_traces(publisher, entries=5)
        wait_for(lambda: pending(client, keys) == 0 and span_counts(fresh_database.admin_dsn)[0] >= total,
                 30, 0.1, "the writer to reconnect and drain")
        assert span_counts(fresh_database.admin_dsn) == (total, total)
        assert writer.metric("observatory_storage_redis_errors_total") > 0
        writer.wait_ready()
        assert writer.stop() == 0
    finally:
        writer.kill()
