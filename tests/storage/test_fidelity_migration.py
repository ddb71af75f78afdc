"""Migration 0006 converts an existing install: rows stored before it (also in compressed
TimescaleDB chunks) stay readable, read back with the new fields empty; rows written after
it carry them; down removes the columns and keeps the rows. On plain PostgreSQL always, on
TimescaleDB where TEST_TIMESCALE_DSN answers."""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from storage.decode import request_rows
from storage.migrations import Migrator
from storage.writer import SpanWriter
from tests.conftest import ADMIN_DSN, create_database, drop_database
from tests.storage.test_timescaledb import TIMESCALE_DSN, _skip_reason

NEW_SPAN_COLUMNS = ("resource_schema_url", "resource_dropped_attributes_count", "scope_attributes", "scope_schema_url",
                    "scope_dropped_attributes_count", "exact_values")
OLD_NS = time.time_ns() - 3 * 86400 * 10**9  # three days ago: a chunk compression can take
OLD_TRACE = bytes.fromhex("0a" * 16)
BEFORE = 5  # the newest migration number below 0006: down to it leaves the shape 0006 converts


def columns(conn: psycopg.Connection, table: str) -> set[str]:
    return {r[0] for r in conn.execute("SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped", (table,))}


def insert_old_rows(conn: psycopg.Connection) -> None:
    """A span, an event and a link in the shape 0001 made, as an older writer stored them."""
    conn.execute("""INSERT INTO spans (trace_id, span_id, name, service_name, start_time, end_time, start_time_unix_nano,
                        end_time_unix_nano, duration_ns, attributes, resource_attributes, flags)
                    VALUES (%s, %s, 'old span', 'legacy', to_timestamp(%s / 1e9), to_timestamp(%s / 1e9), %s, %s, 1000,
                            '{"ratio": "nan", "n": 3}', '{"service.name": "legacy"}', 1)""",
                 (OLD_TRACE, b"\x01" * 8, OLD_NS, OLD_NS + 1000, OLD_NS, OLD_NS + 1000))
    conn.execute("""INSERT INTO span_events (trace_id, span_id, span_start_time, event_index, time, time_unix_nano, name)
                    VALUES (%s, %s, to_timestamp(%s / 1e9), 0, to_timestamp(%s / 1e9), %s, 'old event')""",
                 (OLD_TRACE, b"\x01" * 8, OLD_NS, OLD_NS, OLD_NS))
    conn.execute("""INSERT INTO span_links (trace_id, span_id, span_start_time, link_index, linked_trace_id, linked_span_id)
                    VALUES (%s, %s, to_timestamp(%s / 1e9), 0, %s, %s)""", (OLD_TRACE, b"\x01" * 8, OLD_NS, b"\x02" * 16, b"\x02" * 8))


def new_request() -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add(schema_url="https://opentelemetry.io/schemas/1.26.0")
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="fresh")))
    ss = rs.scope_spans.add(schema_url="https://example.com/s")
    ss.scope.name = "lib"
    ss.scope.attributes.append(KeyValue(key="scope.flag", value=AnyValue(bool_value=True)))
    span = ss.spans.add(trace_id=b"\x03" * 16, span_id=b"\x04" * 8, name="new span", start_time_unix_nano=OLD_NS + 5000,
                        end_time_unix_nano=OLD_NS + 9000)
    span.attributes.append(KeyValue(key="ratio", value=AnyValue(double_value=float("nan"))))
    return request


@pytest.mark.parametrize("server", ["postgresql", pytest.param("timescaledb", marks=pytest.mark.timescaledb)])
def test_0006_converts_an_install_holding_spans(server: str) -> None:
    dsn = ADMIN_DSN
    if server == "timescaledb":
        reason = _skip_reason()
        if reason:
            pytest.skip(reason)
        dsn = TIMESCALE_DSN
    database = create_database("obs_fidelity", dsn)
    try:
        with psycopg.connect(database.admin_dsn, autocommit=True) as conn:
            with Migrator(conn) as migrator:
                assert [m.version for m in migrator.down(to=BEFORE)] == [6]  # back to the shape before 0006
            assert not columns(conn, "spans") & set(NEW_SPAN_COLUMNS)
            insert_old_rows(conn)
            timescale = conn.execute("SELECT observatory_uses_timescaledb()").fetchone()[0]
            if timescale:
                compressed = conn.execute("SELECT count(compress_chunk(c)) FROM show_chunks('spans') c").fetchone()[0]
                conn.execute("SELECT compress_chunk(c) FROM show_chunks('span_events') c")
                assert compressed >= 1
            with Migrator(conn) as migrator:
                assert [m.version for m in migrator.up()] == [6]
            assert columns(conn, "spans") >= set(NEW_SPAN_COLUMNS)
            assert "exact_values" in columns(conn, "span_events") and "exact_values" in columns(conn, "span_links")
            old = conn.execute(f"SELECT name, attributes, {', '.join(NEW_SPAN_COLUMNS)} FROM spans WHERE trace_id = %s", (OLD_TRACE,)).fetchone()
            assert old == ("old span", {"ratio": "nan", "n": 3}, None, None, None, None, None, None)
            assert conn.execute("SELECT name, exact_values FROM span_events WHERE trace_id = %s", (OLD_TRACE,)).fetchall() == [("old event", None)]

        async def write() -> int:
            async with await psycopg.AsyncConnection.connect(database.app_dsn, autocommit=True) as conn:
                return await SpanWriter(conn).write(request_rows(new_request()))

        assert asyncio.run(write()) == 1  # the writer's COPY names the new columns, also into a compressed chunk's range
        with psycopg.connect(database.readonly_dsn) as conn:  # the API's role reads the new columns
            new = conn.execute(f"SELECT {', '.join(NEW_SPAN_COLUMNS)} FROM spans WHERE span_id = %s", (b"\x04" * 8,)).fetchone()
        assert new == ("https://opentelemetry.io/schemas/1.26.0", 0, {"scope.flag": True}, "https://example.com/s", 0,
                       {"attributes": {"ratio": {"doubleValue": "NaN"}}})

        with psycopg.connect(database.admin_dsn, autocommit=True) as conn:
            with Migrator(conn) as migrator:
                assert [m.version for m in migrator.down(to=BEFORE)] == [6]
            assert not columns(conn, "spans") & set(NEW_SPAN_COLUMNS)
            assert conn.execute("SELECT count(*) FROM spans").fetchone() == (2,)
            with Migrator(conn) as migrator:
                assert [m.version for m in migrator.up()] == [6]
    finally:
        drop_database(database.name, dsn)
