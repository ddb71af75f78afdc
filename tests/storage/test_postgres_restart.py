"""PostgreSQL restarts under load: the writer keeps its batch, reports not-ready, resumes."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest
import redis as redis_sync

from common.stream import StreamKeys
from storage.migrations import Migrator
from tests.conftest import Database
from tests.infra import PrivatePostgres
from tests.storage.support import Publisher, pending, request, span_counts, trace_ids, writer_process
from tests.support import http_get, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(private_postgres: PrivatePostgres) -> PrivatePostgres:
    return private_postgres

def test_restart_during_load_loses_nothing_and_duplicates_nothing(
    server: PrivatePostgres, redis_prefix: str, redis_client: redis_sync.Redis, tmp_path: Path,
) -> None:
    with psycopg.connect(server.dsn) as conn, Migrator(conn) as migrator:
        migrator.up()
    app_dsn = server.dsn.replace("postgres@", "observatory_app@")
    database = Database("postgres", server.dsn, app_dsn, server.dsn)
    keys = StreamKeys(redis_prefix, 1)
    publisher = Publisher(redis_client, keys)
    writer = writer_process(database, redis_prefix, tmp_path, BATCH_SIZE="200").start()
    try:
        writer.wait_ready()
        published = [0]
        stop = threading.Event()

        def load() -> None:  # a steady stream of entries during the whole outage
            while not stop.is_set():
                publisher.publish(request(trace_ids(5)))
                published[0] += 15
                stop.wait(0.01)

        loader = threading.Thread(target=load)
        loader.start()
        wait_for(lambda: span_counts(server.dsn)[0] > 500, 30, 0.05, "spans flowing")
        server.stop()
        wait_for(lambda: http_get(f"http://127.0.0.1:{writer.metrics_port}/ready")[0] == 503, 20, 0.1, "not ready")
        acked_during_outage = writer.metric("observatory_storage_entries_acked_total")
        stop.wait(2.0)
        assert writer.metric("observatory_storage_entries_acked_total") == acked_during_outage  # nothing acked
        assert writer.proc is not None and writer.proc.poll() is None  # and the writer stays up
        server.start()
        stop.set()
        loader.join()
        wait_for(lambda: pending(redis_client, keys) == 0 and span_counts(server.dsn)[0] >= published[0],
                 60, 0.1, "the writer to resume and drain")
        assert span_counts(server.dsn) == (published[0], published[0])
        assert writer.metric("observatory_storage_write_retries_total") > 0
        writer.wait_ready()
        assert writer.stop() == 0
    finally:
        writer.kill()
