"""kill -9 in the middle of a load: nothing the collector acknowledged is lost or doubled."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Database
from tests.e2e.conftest import start_stack
from tests.faults.load import Load, make_spans, stored_counts, total_spans
from tests.support import wait_for

pytestmark = pytest.mark.e2e

SPANS = 6000


def assert_stored_exactly_once(database: Database, acknowledged: set, timeout: float = 60.0) -> None:
    assert acknowledged, "the load acknowledged nothing; the test proves nothing"
    wait_for(lambda: total_spans(database.admin_dsn) >= len(acknowledged), timeout, 0.2,
             f"{len(acknowledged)} acknowledged spans to be stored")
    counts = stored_counts(database.admin_dsn, acknowledged)
    missing = [k for k in acknowledged if k not in counts]
    doubled = [k for k, n in counts.items() if n != 1]
    assert not missing, f"{len(missing)} acknowledged spans were lost"
    assert not doubled, f"{len(doubled)} spans stored more than once"


def test_writer_killed_mid_load_loses_and_doubles_nothing(fresh_database: Database, redis_prefix: str, tmp_path: Path) -> None:
    # A restarted writer gets a new consumer name, so the dead one's pending entries come
    # back only through XAUTOCLAIM: CLAIM_IDLE is short to keep the test short.
    stack = start_stack(fresh_database, redis_prefix, tmp_path, CLAIM_IDLE="2", BATCH_SIZE="500")
    try:
        load = Load(make_spans(SPANS, "kill-writer"), "grpc", stack.grpc_target, per_request=50).start()
        wait_for(lambda: total_spans(fresh_database.admin_dsn) > 0, 30, 0.02, "the first rows")
        stack.storage.kill()  # SIGKILL: no flush, no ack
        wait_for(lambda: load.sent_requests > len(load.chunks) // 2, 60, 0.05, "half the load to be sent")
        stack.storage.start().wait_ready()
        result = load.join()
        assert result.requests_failed == 0  # the collector stayed up: every export succeeded
        assert_stored_exactly_once(fresh_database, result.acknowledged)
        assert total_spans(fresh_database.admin_dsn) == SPANS
    finally:
        stack.stop()


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_collector_killed_mid_load_sdk_retries_deliver(fresh_database: Database, redis_prefix: str, tmp_path: Path, protocol: str) -> None:
    stack = start_stack(fresh_database, redis_prefix, tmp_path)
    try:
        endpoint = stack.grpc_target if protocol == "grpc" else stack.http_url
        load = Load(make_spans(3000, f"kill-collector-{protocol}"), protocol, endpoint, per_request=25, timeout=60).start()
        wait_for(lambda: load.result.requests_ok > 10, 30, 0.01, "some exports to succeed")
        stack.collector.kill()
        stack.collector.start().wait_ready()
        result = load.join()
        # Retries carried every request through the restart; nothing acknowledged is lost.
        assert_stored_exactly_once(fresh_database, result.acknowledged)
        assert result.failed == set(), f"{len(result.failed)} spans were given up by the SDK"
    finally:
        stack.stop()
