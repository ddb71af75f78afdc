"""PostgreSQL and Redis restarted in the middle of a load, on private servers.

What each must lose: nothing for a PostgreSQL restart (the writer keeps its batch and does
not acknowledge); nothing for a Redis crash with appendfsync always; with appendfsync
everysec (the compose default) a crash may lose up to about one second of acknowledged
entries — the test measures it and holds it to that bound. A clean Redis restart (SHUTDOWN,
which fsyncs) loses nothing in either mode. docs/GUARANTEES.md records the figures.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import Database, create_database, drop_database
from tests.e2e.conftest import start_stack
from tests.faults.load import Load, make_spans, stored_counts, total_spans
from tests.faults.test_process_kills import assert_stored_exactly_once
from tests.infra import PrivatePostgres, PrivateRedis
from tests.support import wait_for

pytestmark = pytest.mark.e2e


def test_postgres_restart_mid_load(private_postgres: PrivatePostgres, redis_prefix: str, tmp_path: Path) -> None:
    database = create_database(server=private_postgres.admin_dsn)
    stack = start_stack(database, redis_prefix, tmp_path, BATCH_SIZE="200")
    try:
        load = Load(make_spans(4000, "pg-restart"), "grpc", stack.grpc_target, per_request=40, senders=2).start()
        wait_for(lambda: total_spans(database.admin_dsn) > 0, 30, 0.02, "the first rows")
        private_postgres.restart(down_for=2.0)
        result = load.join()
        assert result.requests_failed == 0  # the collector does not need PostgreSQL
        assert_stored_exactly_once(database, result.acknowledged, timeout=90)
        assert stack.storage.proc.poll() is None, "the writer must survive a database restart"
        assert stack.storage.metric("observatory_storage_write_retries_total") >= 1
    finally:
        stack.stop()
        drop_database(database.name, private_postgres.admin_dsn)


def _redis_crash(tmp_path: Path, fresh_database: Database, redis_prefix: str, appendfsync: str) -> tuple[int, int, float]:
    """(acknowledged, lost, acknowledged spans per second) for a kill -9 of Redis mid-load."""
    server = PrivateRedis(tmp_path / "redis", appendfsync=appendfsync).start()
    stack = start_stack(fresh_database, redis_prefix, tmp_path, REDIS_URL=server.url, RETRY_AFTER="1", CLAIM_IDLE="2")
    try:
        load = Load(make_spans(4000, f"redis-{appendfsync}"), "grpc", stack.grpc_target, per_request=40,
                    senders=2, timeout=60).start()
        started = time.monotonic()
        wait_for(lambda: len(load.result.acknowledged) > 1000, 30, 0.01, "a quarter of the load acknowledged")
        server.kill()
        rate = len(load.result.acknowledged) / (time.monotonic() - started)
        server.start()  # same port, same directory: the AOF is replayed
        result = load.join()
        stack.storage.wait_ready(60)
        wait_for(Settled(fresh_database, len(result.acknowledged)), 90, 0.5, "the stored count to settle")
        counts = stored_counts(fresh_database.admin_dsn, result.acknowledged)
        assert all(n == 1 for n in counts.values()), "duplicates after a Redis crash"
        return len(result.acknowledged), len(result.acknowledged) - len(counts), rate
    finally:
        stack.stop()
        server.stop()


class Settled:
    """True once every acknowledged span is stored, or the stored count stopped moving for
    twenty polls (10 s, longer than a claim cycle: CLAIM_IDLE 2 s plus the writer's 5 s
    claim interval) — what a crash lost will never arrive."""

    def __init__(self, database: Database, expected: int) -> None:
        self.database = database
        self.expected = expected
        self.totals: list[int] = []

    def __call__(self) -> bool:
        self.totals.append(total_spans(self.database.admin_dsn))
        if self.totals[-1] >= self.expected:
            return True
        return len(self.totals) >= 20 and len(set(self.totals[-20:])) == 1


def test_redis_crash_with_appendfsync_always_loses_nothing(fresh_database: Database, redis_prefix: str, tmp_path: Path) -> None:
    acknowledged, lost, _rate = _redis_crash(tmp_path, fresh_database, redis_prefix, "always")
    assert acknowledged >= 4000 * 0.9
    assert lost == 0


def test_redis_crash_with_appendfsync_everysec_loses_at_most_a_second(fresh_database: Database, redis_prefix: str, tmp_path: Path) -> None:
    acknowledged, lost, rate = _redis_crash(tmp_path, fresh_database, redis_prefix, "everysec")
    print(f"appendfsync everysec crash: {lost} of {acknowledged} acknowledged spans lost at {rate:.0f} spans/s")
    assert lost <= rate * 2 + 100  # one fsync interval, plus the write in flight
