"""The raw ceiling: the benchmark's rows COPYed straight into `spans`, nothing else.

Rows are converted before the clock starts (the same decode the writer uses, plus the
timestamp columns the writer's INSERT … SELECT computes in SQL); the clock covers one
binary COPY per 10,000 rows and the commit. The table is truncated first, so the ceiling
is measured on the same table, with the same indexes, as the pipeline run.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import psycopg
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from psycopg.adapt import Dumper
from psycopg.pq import Format

from storage.decode import SPAN_COLUMNS, SPAN_TYPES, Rows, request_rows

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
CHUNK = 10_000


class RawJsonb(str):
    """A JSON document already serialized: sent as binary jsonb without re-encoding."""


class RawJsonbDumper(Dumper):
    format = Format.BINARY

    def dump(self, obj: str) -> bytes:
        return b"\x01" + obj.encode()  # jsonb binary format: version 1, then the text


def _rows(requests: list[ExportTraceServiceRequest]) -> list[tuple]:
    rows = Rows()
    for request in requests:
        rows.extend(request_rows(request))
    jsonb = {SPAN_COLUMNS.index("resource_attributes"), SPAN_COLUMNS.index("attributes")}
    start_at, end_at = SPAN_COLUMNS.index("start_time_unix_nano"), SPAN_COLUMNS.index("end_time_unix_nano")
    out = []
    for row in rows.spans:
        values = [RawJsonb(v) if i in jsonb else v for i, v in enumerate(row)]
        start, end = row[start_at], row[end_at]
        values += [EPOCH + timedelta(microseconds=start // 1000), EPOCH + timedelta(microseconds=end // 1000), end - start]
        out.append(tuple(values))
    return out


def raw_copy_ceiling(dsn: str, requests: list[ExportTraceServiceRequest]) -> dict:
    rows = _rows(requests)
    types = [("jsonb" if c in ("resource_attributes", "attributes") else t) for c, t in zip(SPAN_COLUMNS, SPAN_TYPES)]
    types += ["timestamptz", "timestamptz", "int8"]
    columns = ", ".join([*SPAN_COLUMNS, "start_time", "end_time", "duration_ns"])
    with psycopg.connect(dsn, autocommit=True) as conn:
        dumper = type("Dumper", (RawJsonbDumper,), {"oid": conn.adapters.types["jsonb"].oid})
        conn.adapters.register_dumper(RawJsonb, dumper)
        conn.execute("TRUNCATE spans, span_events, span_links")
        started = time.perf_counter()
        with conn.transaction():
            for offset in range(0, len(rows), CHUNK):
                with conn.cursor().copy(f"COPY spans ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(types)
                    for row in rows[offset:offset + CHUNK]:
                        copy.write_row(row)
        seconds = time.perf_counter() - started
        stored = conn.execute("SELECT count(*) FROM spans").fetchone()[0]
    assert stored == len(rows), f"ceiling COPY stored {stored} of {len(rows)} rows"
    return {"rows": len(rows), "seconds": round(seconds, 2), "rows_per_s": round(len(rows) / seconds)}
