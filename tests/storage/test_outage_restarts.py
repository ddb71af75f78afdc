"""Restarts during a database outage are not failures: a writer killed again and again
(kill -9, the same CONSUMER_NAME, as docs/OPERATIONS.md recommends) while PostgreSQL is
down re-reads its pending entries each time, and when the database is back every span is
stored once and nothing is dead-lettered."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import redis as redis_sync

from common.stream import StreamKeys
from storage.migrations import Migrator
from tests.conftest import Database
from tests.infra import PrivatePostgres
from tests.storage.support import Publisher, pending, publish_traces, span_counts, writer_process
from tests.support import http_get, wait_for

pytestmark = pytest.mark.e2e
KILLS = 6


def test_kills_during_an_outage_dead_letter_nothing(
    private_postgres: PrivatePostgres, redis_prefix: str, redis_client: redis_sync.Redis, tmp_path: Path,
) -> None:
    server = private_postgres
    with psycopg.connect(server.dsn) as conn, Migrator(conn) as migrator:
        migrator.up()
    database = Database("postgres", server.dsn, server.dsn.replace("postgres@", "observatory_app@"), server.dsn)
    keys = StreamKeys(redis_prefix, 1)
    publisher = Publisher(redis_client, keys)
    # MAX_DELIVERIES 2 and CLAIM_IDLE 1 s: with delivery counts, the second restart (or a
    # claim of its own held entries) would dead-letter everything.
    settings = {"CONSUMER_NAME": "writer-0", "MAX_DELIVERIES": "2", "CLAIM_IDLE": "1", "BATCH_SIZE": "90"}
    total = publish_traces(publisher, entries=10)
    writer = writer_process(database, redis_prefix, tmp_path, "first", **settings).start()
    wait_for(lambda: span_counts(server.dsn)[0] == total and pending(redis_client, keys) == 0, 30, 0.1, "first spans stored")

    server.stop()
    total += publish_traces(publisher, entries=40)
    for kill in range(KILLS):
        wait_for(lambda: http_get(f"http://127.0.0.1:{writer.metrics_port}/ready")[0] == 503, 20, 0.1, "not ready")
        # It has read the entries (they are pending under its name) and waits for the database.
        wait_for(lambda: pending(redis_client, keys) >= 6, 20, 0.1, "entries held")
        if kill == 2:
            wait_for(lambda: writer.metric("observatory_storage_write_retries_total") >= 4, 20, 0.1, "retries past CLAIM_IDLE")
        writer.kill()
        writer = writer_process(database, redis_prefix, tmp_path, f"again-{kill}", **settings).start()
    server.start()
    wait_for(lambda: pending(redis_client, keys) == 0 and span_counts(server.dsn)[0] >= total, 60, 0.1,
             "every span stored after the outage")
    assert span_counts(server.dsn) == (total, total)
    assert redis_client.xlen(keys.dlq) == 0
    assert not redis_client.exists(keys.failures(0))  # no failure was counted
    assert redis_client.xlen(keys.stream(0)) == 0  # written entries left the stream
    assert writer.metric("observatory_storage_entries_claimed_total") == 0  # it never claimed what it held
    assert writer.stop() == 0
