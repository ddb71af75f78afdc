"""100,000 spans with planted PII of every detector kind in every position (names, keys,
scope, trace state, resource, bytes, ...) go through the real stack with redaction on:
afterwards no planted value, nor the digits of a planted number in any form, is anywhere in
the database (every text and JSONB column of every table), in the entries the collector put
on the stream, in the dead letters, in the services' logs or on their /metrics; and few
ordinary values were changed."""

from __future__ import annotations

import asyncio
import base64
import re
from pathlib import Path

import psycopg
import pytest
import redis as redis_sync

from cli.loadgen.send import Payload, send_all
from tests.conftest import Database
from tests.e2e.conftest import start_stack
from tests.faults.load import total_spans
from common.stream import StreamEntry, StreamKeys
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from tests.collector.process import collector_process
from tests.faults.planted_pii import KINDS, POSITIONS, Planted, build, found
from tests.support import http_get, wait_for

pytestmark = pytest.mark.e2e

SPANS = 100_000
FALSE_POSITIVE_LIMIT = 0.005


def database_text(dsn: str) -> str:
    """Every text and JSONB column of every table in the public schema, as one string."""
    parts = []
    with psycopg.connect(dsn) as conn:
        columns = conn.execute(
            "SELECT c.table_name, c.column_name FROM information_schema.columns c "
            "JOIN information_schema.tables t USING (table_schema, table_name) "
            "WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' "
            "AND c.data_type IN ('text', 'jsonb', 'json', 'character varying')"
        ).fetchall()
        for table, column in columns:
            with conn.cursor().copy(f'COPY (SELECT "{column}" FROM "{table}") TO STDOUT') as copy:
                parts.extend(bytes(chunk).decode() for chunk in copy)
    assert parts, "found no text columns to search"
    text = "".join(parts)
    # bytea and bytes values come out hex- or base64-encoded: search their decoded form too.
    decoded = [_unbase64(b64) for b64 in re.findall(r'"([A-Za-z0-9+/]{16,}={0,2})"', text)]
    return text + "\n".join(decoded)


def _unbase64(text: str) -> str:
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4)).decode("utf-8", "replace")
    except ValueError:  # binascii.Error: a word that only looks like base64
        return ""


def request_text(request: ExportTraceServiceRequest) -> str:
    """Every text of a request as the writer would read it (raw bytes, UTF-8)."""
    return request.SerializeToString().decode("utf-8", "replace")


def assert_no_leak(where: str, text: str, planted: Planted) -> None:
    leaks = found(text, planted)
    assert not leaks, (where, {kind: sorted(values)[:3] for kind, values in leaks.items()})


def test_stream_entries_logs_and_metrics_hold_no_planted_pii(redis_prefix: str, redis_client: redis_sync.Redis, tmp_path: Path) -> None:
    requests, planted = build(len(KINDS) * len(POSITIONS) * 4, per_request=100)
    assert planted.combinations == {(k, p) for k in KINDS for p in POSITIONS}
    collector = collector_process(redis_prefix, tmp_path, LOG_LEVEL="debug")
    collector.service.start().wait_ready()
    try:
        payloads = [Payload(r.SerializeToString(), sum(len(s.spans) for rs in r.resource_spans for s in rs.scope_spans)) for r in requests]
        sent = asyncio.run(send_all(payloads, "http/protobuf", collector.http_url, concurrency=2))
        assert sent.failed_spans == 0, sent.errors
        _, metrics_text = http_get(f"http://127.0.0.1:{collector.service.metrics_port}/metrics")
    finally:
        collector.service.stop()
    keys = StreamKeys(redis_prefix)
    entries = redis_client.xrange(keys.stream(0))
    assert sum(StreamEntry.from_fields(fields).spans for _id, fields in entries) == sent.spans
    stream_text = "".join(request_text(ExportTraceServiceRequest.FromString(StreamEntry.from_fields(fields).body)) for _id, fields in entries)
    assert found("".join(request_text(r) for r in requests), planted).keys() >= set(KINDS)  # the search can fail
    assert_no_leak("stream entries", stream_text, planted)
    assert_no_leak("collector log", collector.service.log_path.read_text(errors="replace"), planted)
    assert_no_leak("collector /metrics", metrics_text.decode(), planted)


def test_no_planted_pii_reaches_the_database(fresh_database: Database, redis_prefix: str, tmp_path: Path) -> None:
    requests, planted = build(SPANS)
    assert planted.combinations == {(k, p) for k in KINDS for p in POSITIONS}  # every kind in every position
    stack = start_stack(fresh_database, redis_prefix, tmp_path, ENABLE_PII_DETECTION="true", BATCH_SIZE="5000")
    try:
        payloads = [Payload(r.SerializeToString(), sum(len(s.spans) for rs in r.resource_spans for s in rs.scope_spans))
                    for r in requests]
        sent = asyncio.run(send_all(payloads, "http/protobuf", stack.http_url, concurrency=4))
        assert sent.failed_spans == 0 and sent.spans + sent.rejected_spans == SPANS, sent.errors
        wait_for(lambda: total_spans(fresh_database.admin_dsn) == sent.spans, 180, 0.5, "every span stored")
        for service in (stack.collector, stack.storage, stack.api):
            _, metrics_text = http_get(f"http://127.0.0.1:{service.metrics_port}/metrics")
            assert_no_leak(f"{service.name} /metrics", metrics_text.decode(), planted)
    finally:
        stack.stop()

    text = database_text(fresh_database.admin_dsn)
    # The check can fail: the same search over the bodies as sent finds every kind.
    sent_text = "".join(request_text(r) for r in requests[:50])
    assert set(found(sent_text, planted)) >= set(KINDS)
    assert_no_leak("database", text, planted)
    dead = redis_sync.Redis.from_url(stack.env["REDIS_URL"]).xrange(StreamKeys(redis_prefix).dlq)
    assert_no_leak("dead letters", "".join(str(fields) for _id, fields in dead), planted)
    for service in (stack.collector, stack.storage, stack.api):
        assert_no_leak(f"{service.name} log", service.log_path.read_text(errors="replace"), planted)

    with psycopg.connect(fresh_database.admin_dsn) as conn:
        rows = conn.execute("SELECT span_id, attributes->>'app.clean' FROM spans").fetchall()
    changed = sum(1 for span_id, value in rows if value != planted.clean[bytes(span_id).hex()])
    rate = changed / len(rows)
    print(f"false positives on ordinary values: {changed} of {len(rows)} ({rate:.3%})")
    assert rate <= FALSE_POSITIVE_LIMIT
