"""SpanWriter against the real PostgreSQL: exact round trip, idempotency, exact rollups."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import psycopg
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from storage.decode import decode
from storage.writer import SpanWriter
from tests.conftest import Database
from tests.storage.support import NOW_NS, kv, request, trace_ids


@pytest.fixture
async def writer(fresh_database: Database) -> AsyncIterator[SpanWriter]:
    conn = await psycopg.AsyncConnection.connect(fresh_database.app_dsn, autocommit=True, options="-c TimeZone=UTC")
    yield SpanWriter(conn, retention_days=30)
    await conn.close()


def rich_request() -> tuple[bytes, object]:
    (trace,) = trace_ids(1)
    req = request([trace], spans_per_trace=2)
    rs = req.resource_spans[0]
    rs.resource.attributes.append(kv("deployment.environment", "prod"))
    rs.scope_spans[0].scope.name, rs.scope_spans[0].scope.version = "openai.instr", "1.2"
    span = rs.scope_spans[0].spans[1]
    span.parent_span_id = rs.scope_spans[0].spans[0].span_id
    span.kind, span.trace_state, span.flags = Span.SPAN_KIND_CLIENT, "vendor=x", 0x101
    span.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message="rate limited"))
    span.dropped_attributes_count, span.dropped_events_count, span.dropped_links_count = 1, 2, 3
    span.attributes.extend([kv("gen_ai.response.model", "gpt-4o-mini-2024-07-18"), kv("gen_ai.usage.cost", 0.0125)])
    span.events.add(time_unix_nano=NOW_NS + 1_234_567, name="gen_ai.choice", attributes=[kv("index", 0)],
                    dropped_attributes_count=4)
    span.events.add(time_unix_nano=NOW_NS + 2_000_001, name="exception", attributes=[kv("exception.message", "429")])
    span.links.add(trace_id=b"\x07" * 16, span_id=b"\x08" * 8, trace_state="a=b", flags=1,
                   attributes=[kv("link.kind", "retry-of")], dropped_attributes_count=5)
    return trace, req


async def fetch(conn: psycopg.AsyncConnection, query: str, *params: object) -> list[tuple]:
    return await (await conn.execute(query, params)).fetchall()


async def test_span_events_links_resource_and_llm_columns_round_trip_exactly(writer: SpanWriter) -> None:
    trace, req = rich_request()
    assert await writer.write(decode(req.SerializeToString())) == 2
    span = req.resource_spans[0].scope_spans[0].spans[1]
    (row,) = await fetch(writer.conn, """
        SELECT parent_span_id, trace_state, flags, name, kind, status_code, status_message, service_name,
               scope_name, scope_version, start_time_unix_nano, end_time_unix_nano, duration_ns,
               llm_provider, llm_request_model, llm_response_model, input_tokens, output_tokens, total_tokens,
               cost_total_usd, resource_attributes, attributes, dropped_attributes_count, dropped_events_count,
               dropped_links_count, start_time = timestamptz 'epoch' + (start_time_unix_nano / 1000) * interval '1 microsecond'
        FROM spans WHERE trace_id = %s AND span_id = %s""", trace, span.span_id)
    assert row == (
        span.parent_span_id, "vendor=x", 0x101, "op1", 3, 2, "rate limited", "checkout",
        "openai.instr", "1.2", span.start_time_unix_nano, span.end_time_unix_nano, 5_000_000,
        "openai", "gpt-4o-mini", "gpt-4o-mini-2024-07-18", 100, 20, 120,
        Decimal("0.0125"), {"service.name": "checkout", "host.name": "h1", "deployment.environment": "prod"},
        {"http.route": "/r/1", "gen_ai.request.model": "gpt-4o-mini", "gen_ai.provider.name": "openai",
         "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 20,
         "gen_ai.response.model": "gpt-4o-mini-2024-07-18", "gen_ai.usage.cost": 0.0125},
        1, 2, 3, True,
    )
    events = await fetch(writer.conn, """
        SELECT event_index, time_unix_nano, name, attributes, dropped_attributes_count, span_start_time = (
            SELECT start_time FROM spans s WHERE s.trace_id = e.trace_id AND s.span_id = e.span_id)
        FROM span_events e WHERE trace_id = %s ORDER BY event_index""", trace)
    assert events == [(0, NOW_NS + 1_234_567, "gen_ai.choice", {"index": 0}, 4, True),
                      (1, NOW_NS + 2_000_001, "exception", {"exception.message": "429"}, 0, True)]
    links = await fetch(writer.conn, """
        SELECT span_id, link_index, linked_trace_id, linked_span_id, trace_state, flags, attributes,
               dropped_attributes_count FROM span_links WHERE trace_id = %s""", trace)
    assert links == [(span.span_id, 0, b"\x07" * 16, b"\x08" * 8, "a=b", 1, {"link.kind": "retry-of"}, 5)]


async def test_a_redelivered_batch_adds_no_rows_and_no_rollup_counts(writer: SpanWriter) -> None:
    _, req = rich_request()
    rows = decode(req.SerializeToString())
    assert await writer.write(rows) == 2
    assert await writer.write(rows) == 0
    counts = await fetch(writer.conn, """
        SELECT (SELECT count(*) FROM spans), (SELECT count(*) FROM span_events), (SELECT count(*) FROM span_links),
               (SELECT sum(span_count) FROM span_rollups_1m), (SELECT sum(span_count) FROM span_rollups_1h)""")
    assert counts == [(2, 2, 1, 2, 2)]


@pytest.mark.parametrize(("unit", "tier"), [("minute", "span_rollups_1m"), ("hour", "span_rollups_1h")])
async def test_rollups_equal_an_aggregate_over_the_stored_spans(writer: SpanWriter, unit: str, tier: str) -> None:
    minute = 60_000_000_000
    # Batches half a minute apart share minutes; those 50 minutes apart share hours but not
    # minutes: each tier's upserts meet rows an earlier batch made.
    batches = [request(trace_ids(20), service=f"svc{salt % 2}", start_ns=NOW_NS - salt * minute // 2)
               for salt in range(6)]
    batches += [request(trace_ids(10), start_ns=NOW_NS - salt * 50 * minute) for salt in range(1, 5)]
    batches.append(rich_request()[1])
    for req in batches + batches[:3] + batches[-2:]:  # five redelivered
        await writer.write(decode(req.SerializeToString()))
    expected = await fetch(writer.conn, f"""
        SELECT date_trunc('{unit}', start_time), service_name, coalesce(llm_request_model, llm_response_model),
               llm_provider, count(*), count(*) FILTER (WHERE status_code = 2), coalesce(sum(input_tokens), 0)::bigint,
               coalesce(sum(output_tokens), 0)::bigint, coalesce(sum(cost_total_usd), 0), sum(duration_ns)::bigint,
               max(duration_ns)
        FROM spans GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4""")
    rollups = await fetch(writer.conn, f"""
        SELECT bucket, service_name, model, provider, span_count, error_count, input_tokens, output_tokens,
               cost_usd, duration_sum_ns, duration_max_ns FROM {tier} ORDER BY 1, 2, 3, 4""")
    assert rollups == expected
    assert sum(r[4] for r in rollups) == 6 * 60 + 4 * 30 + 2
    assert {r[2] for r in rollups} == {None, "gpt-4o-mini"}


async def test_the_hourly_tier_is_the_per_minute_tier_summed_by_hour(writer: SpanWriter) -> None:
    hour = 3_600_000_000_000
    for n in range(8):  # 90 minutes apart: hours holding one, two or no batches
        await writer.write(decode(request(trace_ids(5), start_ns=NOW_NS - n * hour * 3 // 2).SerializeToString()))
    columns = "span_count, error_count, input_tokens, output_tokens, cost_usd, duration_sum_ns, duration_max_ns"
    from_minutes = await fetch(writer.conn, """
        SELECT date_trunc('hour', bucket), service_name, model, provider, sum(span_count)::bigint,
               sum(error_count)::bigint, sum(input_tokens)::bigint, sum(output_tokens)::bigint, sum(cost_usd),
               sum(duration_sum_ns)::bigint, max(duration_max_ns)
        FROM span_rollups_1m GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4""")
    hourly = await fetch(writer.conn, f"SELECT bucket, service_name, model, provider, {columns} FROM span_rollups_1h ORDER BY 1, 2, 3, 4")
    assert hourly == from_minutes
    assert all(row[0].minute == 0 and row[0].second == 0 for row in hourly)
    assert sum(row[4] for row in hourly) == 8 * 15


async def test_spans_outside_any_partition_land_in_the_default_partition(writer: SpanWriter) -> None:
    far_future = NOW_NS + 5 * 365 * 86_400 * 10**9
    await writer.write(decode(request(trace_ids(2), start_ns=far_future).SerializeToString()))
    rows = await fetch(writer.conn, "SELECT tableoid::regclass::text, count(*) FROM spans GROUP BY 1")
    assert rows == [("spans_default", 6)]


async def test_the_readonly_role_reads_rollups_and_cannot_write_them(fresh_database: Database, writer: SpanWriter) -> None:
    await writer.write(decode(rich_request()[1].SerializeToString()))
    async with await psycopg.AsyncConnection.connect(fresh_database.readonly_dsn, autocommit=True) as conn:
        for tier in ("span_rollups_1m", "span_rollups_1h"):
            assert (await fetch(conn, f"SELECT sum(span_count) FROM {tier}")) == [(2,)]
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                await conn.execute(f"DELETE FROM {tier}")


async def test_a_batch_mixing_stored_and_new_spans_inserts_only_the_new(writer: SpanWriter) -> None:
    stored = request(trace_ids(4))
    await writer.write(decode(stored.SerializeToString()))
    mixed = request(trace_ids(3))
    mixed.resource_spans.extend(stored.resource_spans)  # the fast COPY hits a unique violation
    assert await writer.write(decode(mixed.SerializeToString())) == 9
    counts = await fetch(writer.conn, """SELECT (SELECT count(*) FROM spans), (SELECT sum(span_count) FROM span_rollups_1m),
                                                (SELECT sum(span_count) FROM span_rollups_1h)""")
    assert counts == [(21, 21, 21)]


async def test_the_widest_values_otlp_carries_are_stored_unchanged(writer: SpanWriter) -> None:
    # Binary COPY wraps a value that does not fit its column instead of refusing it.
    (trace,) = trace_ids(1)
    req = request([trace], spans_per_trace=1)
    span = req.resource_spans[0].scope_spans[0].spans[0]
    span.flags, span.kind, span.status.code = 2**32 - 1, 2**31 - 1, 2**31 - 1
    span.dropped_attributes_count = span.dropped_events_count = span.dropped_links_count = 2**32 - 1
    span.end_time_unix_nano = 2**63 - 1
    span.events.add(time_unix_nano=NOW_NS, name="e", dropped_attributes_count=2**32 - 1)
    span.links.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, flags=2**32 - 1, dropped_attributes_count=2**32 - 1)
    assert await writer.write(decode(req.SerializeToString())) == 1
    rows = await fetch(writer.conn, """
        SELECT s.flags, s.kind, s.status_code, s.dropped_attributes_count, s.dropped_events_count,
               s.dropped_links_count, s.end_time_unix_nano, e.dropped_attributes_count, l.flags, l.dropped_attributes_count
        FROM spans s JOIN span_events e USING (trace_id, span_id) JOIN span_links l USING (trace_id, span_id)""")
    u32 = 2**32 - 1
    assert rows == [(u32, 2**31 - 1, 2**31 - 1, u32, u32, u32, 2**63 - 1, u32, u32, u32)]


async def test_large_attribute_documents_are_toasted_with_lz4_and_read_back_whole(writer: SpanWriter) -> None:
    # A prompt over the TOAST threshold is compressed; the writer's session asks for lz4 (much
    # cheaper in CPU than pglz) wherever the server was built with it.
    lz4 = await fetch(writer.conn, "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
    (trace,) = trace_ids(1)
    req = request([trace], spans_per_trace=1)
    prompt = " ".join(f"word{n}" for n in range(2_000))  # ~14 KB, compressible
    req.resource_spans[0].scope_spans[0].spans[0].attributes.append(kv("gen_ai.input.messages", prompt))
    assert await writer.write(decode(req.SerializeToString())) == 1
    rows = await fetch(writer.conn, "SELECT pg_column_compression(attributes), attributes->>'gen_ai.input.messages' FROM spans")
    assert rows == [("lz4" if lz4[0][0] else "pglz", prompt)]


async def test_rollup_sums_are_held_at_the_bigint_maximum_instead_of_refusing_later_spans(writer: SpanWriter) -> None:
    def long_spans() -> bytes:  # each lasts from 1970 to now: six of them pass 2^63 ns
        req = request(trace_ids(3))
        for span in req.resource_spans[0].scope_spans[0].spans:
            span.start_time_unix_nano, span.end_time_unix_nano = NOW_NS, NOW_NS + (NOW_NS - 1)
        return req.SerializeToString()

    for _ in range(3):  # 9 spans per bucket, in three transactions: the upsert itself must saturate
        assert await writer.write(decode(long_spans())) == 9
    rows = await fetch(writer.conn, "SELECT sum(span_count), max(duration_sum_ns) FROM span_rollups_1h")
    assert rows == [(27, 2**63 - 1)]
