"""The raw ceiling: the benchmark's rows COPYed straight into `spans`, nothing else.

Rows are decoded before the clock starts (the writer's own decode); the clock covers one
binary COPY of all of them and the commit (bench/storage's copy_spans). The table is
truncated first, so the ceiling is measured on the same table, with the same indexes, as
the pipeline run.
"""

from __future__ import annotations

import psycopg
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.storage.bench_writer import copy_spans
from storage.decode import request_rows
from storage.writer import NO_LZ4, USE_LZ4, register_copy_dumpers


def raw_copy_ceiling(dsn: str, requests: list[ExportTraceServiceRequest]) -> dict:
    rows = [row for request in requests for row in request_rows(request).spans]
    with psycopg.connect(dsn) as conn:
        register_copy_dumpers(conn)
        try:  # as the writer's session does (storage.writer.use_lz4)
            conn.execute(USE_LZ4)
        except NO_LZ4:
            conn.rollback()
        conn.execute("TRUNCATE spans, span_events, span_links, span_rollups_1m")
        conn.execute("SELECT observatory_ensure_partitions(current_date - 2, current_date + 1)")
        conn.commit()
        seconds = copy_spans(conn, rows)
        stored = conn.execute("SELECT count(*) FROM spans").fetchone()[0]
    assert stored == len(rows), f"ceiling COPY stored {stored} of {len(rows)} rows"
    return {"rows": len(rows), "seconds": round(seconds, 2), "rows_per_s": round(len(rows) / seconds)}
