"""One huge entry (100,000 spans, as a large gzip request makes) is written in parts of at
most BATCH_SIZE spans, acknowledged once after its last part, with bounded writer memory."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import redis as redis_sync
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from common.otlp import key_value as kv
from common.stream import StreamKeys
from tests.conftest import Database
from tests.storage.support import Publisher, pending, span_counts, writer_process
from tests.support import peak_rss_bytes, wait_for

pytestmark = pytest.mark.e2e
SPANS = 100_000


def huge_request() -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(kv("service.name", "bulk"))
    scope = rs.scope_spans.add()
    now = time.time_ns()
    trace_id = os.urandom(16)
    for n in range(SPANS):
        span = scope.spans.add(trace_id=trace_id, span_id=os.urandom(8), name="bulk",
                               start_time_unix_nano=now + n, end_time_unix_nano=now + n + 1000)
        span.attributes.extend([kv("http.route", f"/items/{n}"), kv("payload", "x" * 200)])
    return req


def test_a_huge_entry_is_written_in_bounded_batches(
    fresh_database: Database, redis_prefix: str, redis_client: redis_sync.Redis, tmp_path: Path,
) -> None:
    keys = StreamKeys(redis_prefix, 1)
    Publisher(redis_client, keys).publish(huge_request())
    writer = writer_process(fresh_database, redis_prefix, tmp_path, BATCH_SIZE="5000").start()
    try:
        wait_for(lambda: span_counts(fresh_database.admin_dsn)[0] == SPANS and pending(redis_client, keys) == 0,
                 180, 0.2, "the huge entry stored and acknowledged")
        batches = writer.metric("observatory_storage_batch_spans_count")
        assert batches >= SPANS / 5000
        assert writer.metric("observatory_storage_batch_spans_bucket", 'le="5000.0"') == batches  # none past BATCH_SIZE
        assert writer.metric("observatory_storage_entries_acked_total") == 1
        assert writer.metric("observatory_storage_spans_duplicate_total") == 0
        assert redis_client.xlen(keys.stream(0)) == 0
        assert writer.proc is not None
        peak = peak_rss_bytes(writer.proc.pid)
        print(f"writer peak RSS {peak / 2**20:.0f} MiB for one entry of {SPANS} spans")
        assert peak < 400 * 2**20
    finally:
        writer.kill()
