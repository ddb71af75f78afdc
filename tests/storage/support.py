"""Spans made up for the storage tests, published the way the collector does, and counted back."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis as redis_sync
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from common.otlp import key_value as kv
from common.stream import StreamEntry, StreamKeys
from tests.conftest import REDIS_URL, Database
from tests.support import ServiceProcess, free_port, service_env

NOW_NS = time.time_ns()
# The same script the collector runs, so the backlog counters stay right.
_PUBLISH = """
local id = redis.call('XADD', KEYS[1], '*', 'v', ARGV[1], 'body', ARGV[2], 'spans', ARGV[3], 'received_ns', ARGV[4])
redis.call('INCRBY', KEYS[2], ARGV[3])
return id
"""


def request(trace_ids: list[bytes], spans_per_trace: int = 3, service: str = "checkout",
            start_ns: int = NOW_NS, llm: bool = True) -> ExportTraceServiceRequest:
    """Spans of the given traces; the second span of each trace is an LLM call."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend([kv("service.name", service), kv("host.name", "h1")])
    scope = rs.scope_spans.add()
    for trace_id in trace_ids:
        for n in range(spans_per_trace):
            span = scope.spans.add(
                trace_id=trace_id, span_id=trace_id[:4] + n.to_bytes(4, "big"), name=f"op{n}",
                start_time_unix_nano=start_ns + n * 1000, end_time_unix_nano=start_ns + n * 1000 + 5_000_000,
            )
            span.attributes.append(kv("http.route", f"/r/{n}"))
            if llm and n == 1:
                span.attributes.extend([kv("gen_ai.request.model", "gpt-4o-mini"), kv("gen_ai.provider.name", "openai"),
                                        kv("gen_ai.usage.input_tokens", 100), kv("gen_ai.usage.output_tokens", 20)])
    return req


def trace_ids(count: int) -> list[bytes]:
    return [os.urandom(16) for _ in range(count)]


@dataclass
class Publisher:
    client: redis_sync.Redis
    keys: StreamKeys

    def publish(self, req: ExportTraceServiceRequest) -> bytes:
        """One entry per request on the shard of its first trace (as the collector does)."""
        spans = sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
        trace_id = req.resource_spans[0].scope_spans[0].spans[0].trace_id
        shard = self.keys.shard_of(trace_id)
        entry = StreamEntry(req.SerializeToString(), spans, time.time_ns())
        return self.publish_raw(shard, entry.fields())

    def publish_raw(self, shard: int, fields: dict[str, bytes | int]) -> bytes:
        return self.client.eval(  # type: ignore[no-any-return]
            _PUBLISH, 2, self.keys.stream(shard), self.keys.backlog(shard),
            fields.get("v", 1), fields.get("body", b""), fields.get("spans", 0), fields.get("received_ns", 0),
        )


def publish_traces(publisher: Publisher, entries: int, traces_per_entry: int = 10) -> int:
    for _ in range(entries):
        publisher.publish(request(trace_ids(traces_per_entry)))
    return entries * traces_per_entry * 3


def span_counts(dsn: str) -> tuple[int, int]:
    """(rows, distinct span keys) in spans."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*), count(DISTINCT (trace_id, span_id, start_time)) FROM spans").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def pending(client: redis_sync.Redis, keys: StreamKeys) -> int:
    total = 0
    for stream in keys.streams():
        info = client.xpending(stream, "storage")
        total += int(info["pending"])
    return total


def writer_process(database: Database, prefix: str, tmp_path: Path, name: str = "storage", **extra: str) -> ServiceProcess:
    port = free_port()
    env = service_env({
        "DATABASE_URL": database.admin_dsn, "DATABASE_APP_URL": database.app_dsn, "REDIS_URL": REDIS_URL,
        "REDIS_KEY_PREFIX": prefix, "METRICS_HOST": "127.0.0.1", "STORAGE_METRICS_PORT": str(port),
        "FLUSH_INTERVAL": "0.1", "LOG_LEVEL": "info", "OBSERVATORY_ENV_FILE": "/nonexistent",
    }, **extra)
    return ServiceProcess("storage", env, port, tmp_path / f"{name}-{port}.log")
