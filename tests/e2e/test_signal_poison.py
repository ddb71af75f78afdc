"""A data point the database cannot hold costs only itself: its neighbours are stored, it
goes to the metrics dead-letter stream alone, with the reason, and the writer goes on."""

from __future__ import annotations

import subprocess
import sys
import time

import psycopg
import pytest
import redis as redis_sync
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from common.signals import METRICS
from common.stream import StreamEntry, StreamKeys
from tests.conftest import REDIS_URL
from tests.e2e.conftest import Stack
from tests.support import ROOT, http_post, wait_for

pytestmark = pytest.mark.e2e


def test_a_point_that_does_not_fit_is_dead_lettered_alone(stack: Stack) -> None:
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.attributes.add(key="service.name").value.string_value = "poison"
    histogram = resource_metrics.scope_metrics.add().metrics.add(name="sizes", unit="By").histogram
    histogram.aggregation_temporality = 1
    now = time.time_ns()
    for n in range(5):
        point = histogram.data_points.add(time_unix_nano=now + n, count=2**64 - 1 if n == 2 else n, sum=1.0,
                                          explicit_bounds=[1.0], bucket_counts=[n, 0])
        point.attributes.add(key="n").value.int_value = n
    status, _, _ = http_post(stack.http_url.replace("/v1/traces", "/v1/metrics"), request.SerializeToString())
    assert status == 200

    def stored() -> list[int] | None:
        with psycopg.connect(stack.database.admin_dsn) as conn:
            rows = [r[0] for r in conn.execute("SELECT (attributes->>'n')::int FROM metric_points ORDER BY 1").fetchall()]
        return rows if len(rows) == 4 else None

    assert wait_for(stored, 30, 0.2, "the four good points") == [0, 1, 3, 4]
    client = redis_sync.Redis.from_url(REDIS_URL)
    try:
        dlq = StreamKeys(stack.prefix, 1, METRICS.stream).dlq
        (entry,) = wait_for(lambda: client.xrange(dlq), 20, 0.2, "the dead letter")
        fields = entry[1]
        letter = METRICS.parse(StreamEntry.from_fields(fields, METRICS.count_field).body)
        (point,) = letter.resource_metrics[0].scope_metrics[0].metrics[0].histogram.data_points
        assert point.count == 2**64 - 1 and fields[b"points"] == b"1"
        assert b"OverflowError" in fields[b"error"] or b"SQLSTATE" in fields[b"error"]
    finally:
        client.close()
    # `observatory dlq --signal metrics` lists it, with its count field.
    listing = subprocess.run([sys.executable, "-m", "cli", "dlq", "--signal", "metrics", "list"], cwd=ROOT, env=stack.env,
                             capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0, listing.stderr
    assert "points" in listing.stdout and "1 dead letter(s) on" in listing.stdout and "otlp:metrics:dlq" in listing.stdout
