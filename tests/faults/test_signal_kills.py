"""kill -9 of the writer in the middle of a load of log records and metric points: nothing the
collector acknowledged is lost or stored twice (the writer stores all three signals).

The load is OTLP/HTTP protobuf requests whose every record and point carries a unique `seq`
attribute; a request answered 200 is acknowledged. The oracle counts rows by `seq`.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from tests.conftest import Database
from tests.e2e.conftest import start_stack
from tests.support import http_post, wait_for

pytestmark = pytest.mark.e2e

REQUESTS = 160
PER_REQUEST = 50


def _logs(first: int) -> bytes:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.add(key="service.name").value.string_value = "kill-logs"
    scope_logs = resource_logs.scope_logs.add()
    now = time.time_ns()
    for seq in range(first, first + PER_REQUEST):
        record = scope_logs.log_records.add(time_unix_nano=now + seq, observed_time_unix_nano=now + seq, severity_number=9)
        record.body.string_value = f"record {seq}"
        record.attributes.add(key="seq").value.int_value = seq
    return request.SerializeToString()


def _metrics(first: int) -> bytes:
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.attributes.add(key="service.name").value.string_value = "kill-metrics"
    metric = resource_metrics.scope_metrics.add().metrics.add(name="kill.gauge", unit="1")
    now = time.time_ns()
    for seq in range(first, first + PER_REQUEST):
        point = metric.gauge.data_points.add(time_unix_nano=now, as_int=seq)
        point.attributes.add(key="seq").value.int_value = seq
    return request.SerializeToString()


class SignalLoad(threading.Thread):
    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.sent = 0
        self.acknowledged: dict[str, set[int]] = {"logs": set(), "metrics": set()}
        self.refused = 0

    def run(self) -> None:
        for n in range(REQUESTS):
            first = n * PER_REQUEST
            for signal, body in (("logs", _logs(first)), ("metrics", _metrics(first))):
                status, _, _ = http_post(f"{self.base}/v1/{signal}", body)
                if status == 200:
                    self.acknowledged[signal].update(range(first, first + PER_REQUEST))
                else:
                    self.refused += 1
            self.sent += 1


def _counts(dsn: str) -> tuple[dict[int, int], dict[int, int]]:
    with psycopg.connect(dsn) as conn:
        logs = dict(conn.execute("SELECT (attributes->>'seq')::int, count(*) FROM logs GROUP BY 1").fetchall())
        points = dict(conn.execute("SELECT (attributes->>'seq')::int, count(*) FROM metric_points GROUP BY 1").fetchall())
    return logs, points


def test_writer_killed_mid_load_of_logs_and_metrics_loses_and_doubles_nothing(
        fresh_database: Database, redis_prefix: str, tmp_path: Path) -> None:
    stack = start_stack(fresh_database, redis_prefix, tmp_path, CLAIM_IDLE="2", BATCH_SIZE="400")
    try:
        load = SignalLoad(stack.http_url.rsplit("/v1/", 1)[0])
        load.start()
        wait_for(lambda: all(_counts(fresh_database.admin_dsn)), 30, 0.02, "the first logs and points stored")
        stack.storage.kill()  # SIGKILL: no flush, no ack
        wait_for(lambda: load.sent > REQUESTS // 2, 60, 0.05, "half the load to be sent")
        stack.storage.start().wait_ready()
        load.join(120)
        assert not load.is_alive() and load.refused == 0
        expected = REQUESTS * PER_REQUEST
        assert len(load.acknowledged["logs"]) == len(load.acknowledged["metrics"]) == expected

        def all_stored() -> tuple[dict[int, int], dict[int, int]] | None:
            logs, points = _counts(fresh_database.admin_dsn)
            return (logs, points) if len(logs) >= expected and len(points) >= expected else None

        logs, points = wait_for(all_stored, 60, 0.2, f"{expected} records and points stored")
        for name, stored, acknowledged in (("log records", logs, load.acknowledged["logs"]), ("points", points, load.acknowledged["metrics"])):
            assert not acknowledged - set(stored), f"acknowledged {name} were lost"
            assert [seq for seq, n in stored.items() if n != 1] == [], f"{name} stored twice"
    finally:
        stack.stop()
