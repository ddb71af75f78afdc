"""GET /metrics (usage), /services and /models: rollups for whole minutes, raw spans at the edges."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import psycopg
import pytest
from aiohttp.test_utils import TestClient
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from storage.decode import decode
from storage.writer import SpanWriter
from tests.api.conftest import ClientFactory, get_json
from tests.api.test_limits import metric
from tests.api.data import MS, S, Rollup, Span, insert_rollups, insert_spans, ns
from tests.conftest import Database, create_database, drop_database
from tests.storage.support import NOW_NS, request, trace_ids

WINDOW = {"start": "2025-06-03T10:00:30Z", "end": "2025-06-03T10:05:30Z"}
HOUR = "2025-06-03T10:00:00.000000000Z"


def iso(unix_ns: int) -> str:
    return datetime.fromtimestamp(unix_ns // S, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def minute(m: int) -> str:
    return f"2025-06-03T10:0{m}:00.000000000Z"


async def test_usage_totals_mix_rollups_and_edge_spans(client: TestClient) -> None:
    body = await get_json(client, "/api/v1/metrics", **WINDOW)
    assert body["source"] == "rollups+raw" and body["bucket"] == "1h" and body["group_by"] == []
    assert body["latency_sample_fraction"] == 1.0
    assert body["rows"] == [{
        "bucket": HOUR, "bucket_unix_nano": ns("2025-06-03T10:00:00Z"),
        "request_count": 18, "error_count": 4, "error_rate": 4 / 18,
        "input_tokens": 1080, "output_tokens": 182, "cost_usd": 4.35,
        # percentiles over the raw spans of the window: 50, 100, 200 and 300 ms
        "latency_ms": {"p50": 150.0, "p95": 285.0, "p99": 297.0, "avg": 110.0, "max": 400.0},
    }]


async def test_usage_by_minute_and_model(client: TestClient) -> None:
    body = await get_json(client, "/api/v1/metrics", **WINDOW, bucket="1m", group_by="model")
    assert [(r["bucket"], r["model"], r["request_count"], r["error_count"]) for r in body["rows"]] == [
        (minute(0), "gpt-4o", 1, 0), (minute(0), None, 1, 0),
        (minute(1), "gpt-4o", 4, 1),
        (minute(2), "claude-3-5-sonnet", 2, 2), (minute(2), "gpt-4o", 6, 0),
        (minute(4), None, 3, 0),
        (minute(5), "gpt-4o", 1, 1),
    ]
    gpt_minute_2 = body["rows"][4]
    # That minute's percentiles come from its one raw span (d5, 200 ms); the totals from the rollup.
    assert gpt_minute_2["latency_ms"] == {"p50": 200.0, "p95": 200.0, "p99": 200.0, "avg": 100.0, "max": 150.0}
    assert body["rows"][3]["latency_ms"]["p50"] is None  # no raw span behind that rollup row


@pytest.mark.parametrize(("params", "expected"), [
    ({"group_by": "service"}, [("bot", 14, 1080), ("indexer", 4, 0)]),
    ({"group_by": ["service", "model"], "service": "bot", "provider": "anthropic"}, [("bot", 2, 50)]),
    ({"model": "gpt-4o", "group_by": "service"}, [("bot", 12, 1030)]),
    ({"service": "nobody", "group_by": "service"}, []),
])
async def test_usage_groups_and_filters(client: TestClient, params: dict, expected: list) -> None:
    body = await get_json(client, "/api/v1/metrics", **WINDOW, **params)
    assert [(r["service"], r["request_count"], r["input_tokens"]) for r in body["rows"]] == expected


async def test_usage_from_raw_spans_only_inside_one_minute(client: TestClient) -> None:
    body = await get_json(client, "/api/v1/metrics", start="2025-06-03T10:00:35Z", end="2025-06-03T10:00:55Z")
    assert body["source"] == "raw"
    assert [(r["request_count"], r["input_tokens"]) for r in body["rows"]] == [(2, 10)]


async def test_usage_from_rollups_only_on_whole_minutes(client: TestClient) -> None:
    body = await get_json(client, "/api/v1/metrics", start="2025-06-03T10:01:00Z", end="2025-06-03T10:05:00Z")
    assert body["source"] == "rollups"
    assert [(r["request_count"], r["error_count"]) for r in body["rows"]] == [(15, 3)]


async def test_services_and_models(client: TestClient) -> None:
    services = await get_json(client, "/api/v1/services", **WINDOW)
    assert [(s["service"], s["request_count"], s["error_count"]) for s in services["services"]] == [("bot", 14, 4), ("indexer", 4, 0)]
    models = await get_json(client, "/api/v1/models", **WINDOW)
    assert [(m["model"], m["provider"], m["request_count"], m["cost_usd"]) for m in models["models"]] == [
        ("gpt-4o", "openai", 12, 4.25), ("claude-3-5-sonnet", "anthropic", 2, 0.1),
    ]


async def test_too_many_buckets_is_refused(client: TestClient) -> None:
    body = await get_json(client, "/api/v1/metrics", expect=400, start="2025-05-01T00:00:00Z", end="2025-05-29T00:00:00Z", bucket="1m")
    assert body["parameter"] == "bucket"


async def test_aggregates_are_cached(make_client: ClientFactory, api_database: Database) -> None:
    client = await make_client(cache_ttl=60)
    uncached = await make_client(cache_ttl=0)
    window = {"start": "2025-06-04T10:00:00Z", "end": "2025-06-04T11:00:00Z"}
    hits, misses = metric("observatory_api_cache_requests_total", result="hit"), metric("observatory_api_cache_requests_total", result="miss")
    first = await client.get("/api/v1/services", params=window, headers={"X-API-Key": "obs_test-key-with-every-scope"})
    assert first.headers["Cache-Status"] == "observatory-api; fwd=miss" and (await first.json())["services"] == []
    with api_database.connect() as conn:
        # In both tiers, as the writer keeps them: the window is a whole hour, read from the hourly one.
        for bucket, tier in (("2025-06-04T10:10:00Z", "span_rollups_1m"), ("2025-06-04T10:00:00Z", "span_rollups_1h")):
            insert_rollups(conn, [Rollup(ns(bucket), "late", None, None, 1, 0, 0, 0, Decimal(0), S, S)], tier=tier)
    try:
        again = await client.get("/api/v1/services", params=window, headers={"X-API-Key": "obs_test-key-with-every-scope"})
        assert again.headers["Cache-Status"] == "observatory-api; hit" and (await again.json())["services"] == []
        assert metric("observatory_api_cache_requests_total", result="hit") == hits + 1
        assert metric("observatory_api_cache_requests_total", result="miss") == misses + 1
        fresh = await uncached.get("/api/v1/services", params=window, headers={"X-API-Key": "obs_test-key-with-every-scope"})
        assert fresh.headers["Cache-Status"] == "observatory-api; fwd=off"
        assert [s["service"] for s in (await fresh.json())["services"]] == ["late"]
    finally:
        with api_database.connect() as conn:
            conn.execute("DELETE FROM span_rollups_1m WHERE service_name = 'late'")
            conn.execute("DELETE FROM span_rollups_1h WHERE service_name = 'late'")


async def test_percentiles_come_from_a_sample_above_the_limit(make_client: ClientFactory) -> None:
    client = await make_client(percentile_sample_spans=5)
    body = await get_json(client, "/api/v1/metrics", **WINDOW)
    # The whole minutes hold 15 spans (rollups), so about a third of the pages are read.
    assert body["latency_sample_fraction"] == round(5 / 15, 6)
    assert [(r["request_count"], r["input_tokens"]) for r in body["rows"]] == [(18, 1080)]  # totals stay exact


async def test_the_hourly_tier_answers_whole_hours_by_default(make_client: ClientFactory, api_database: Database) -> None:
    eleven = ns("2025-06-03T11:00:00Z")
    with api_database.connect() as conn:
        insert_rollups(conn, [Rollup(eleven, "hourly", None, None, 1000, 0, 0, 0, Decimal(0), 0, 0)], tier="span_rollups_1h")
        # The per-minute rows of that hour say otherwise, so the answer shows which tier was read.
        insert_rollups(conn, [Rollup(eleven + 300 * S, "minutely", None, None, 7, 0, 0, 0, Decimal(0), S, S)])
    try:
        window = {"start": "2025-06-03T10:59:30Z", "end": "2025-06-03T12:00:30Z"}
        default = await make_client()
        body = await get_json(default, "/api/v1/metrics", **window, group_by="service")
        assert [(r["service"], r["request_count"]) for r in body["rows"]] == [("hourly", 1000)]
        assert body["source"] == "rollups+raw"  # the half minutes at either end
        # 5-minute buckets do not fit whole hours: the per-minute tier answers.
        body = await get_json(default, "/api/v1/metrics", **window, group_by="service", bucket="5m")
        assert [(r["service"], r["request_count"]) for r in body["rows"]] == [("minutely", 7)]
        minutes_only = await make_client(rollup_tiers=("1m",))
        services = await get_json(minutes_only, "/api/v1/services", **window)
        assert [(s["service"], s["request_count"]) for s in services["services"]] == [("minutely", 7)]
    finally:
        with api_database.connect() as conn:
            conn.execute("DELETE FROM span_rollups_1h WHERE service_name = 'hourly'")
            conn.execute("DELETE FROM span_rollups_1m WHERE service_name = 'minutely'")


async def test_both_tiers_and_the_spans_agree_after_writer_round_trips(make_client: ClientFactory, fresh_database: Database) -> None:
    hour, minute = 3600 * S, 60 * S
    start = (NOW_NS // hour - 5) * hour
    async with await psycopg.AsyncConnection.connect(fresh_database.app_dsn, autocommit=True, options="-c TimeZone=UTC") as conn:
        writer = SpanWriter(conn, retention_days=30)
        for n in range(14):  # every 17 minutes over four hours, two services, some errors, some redelivered
            req = request(trace_ids(3), service=f"svc{n % 2}", start_ns=start + n * 17 * minute + 13 * S)
            for span in req.resource_spans[0].scope_spans[0].spans[:: 1 + n % 3]:
                span.status.code = Status.STATUS_CODE_ERROR
            rows = decode(req.SerializeToString())
            for _ in range(1 + (n % 4 == 0)):
                await writer.write(rows)
    # A partial first hour (its first half minute from spans, then minutes), three whole hours
    # (the hourly tier), ten minutes after them (the per-minute tier).
    first, last = iso(start + 30 * S), iso(start + 4 * hour + 10 * minute)
    params = {"start": first, "end": last, "group_by": "service"}
    default = await get_json(await make_client(database=fresh_database), "/api/v1/metrics", **params)
    minutes = await get_json(await make_client(database=fresh_database, rollup_tiers=("1m",)), "/api/v1/metrics", **params)
    assert default["source"] == minutes["source"] == "rollups+raw"
    assert default["rows"] == minutes["rows"]
    with psycopg.connect(fresh_database.admin_dsn) as admin:
        expected = admin.execute("""
            SELECT extract(epoch FROM date_trunc('hour', start_time))::bigint * 1000000000, service_name, count(*),
                   count(*) FILTER (WHERE status_code = 2), sum(input_tokens), sum(output_tokens)
            FROM spans WHERE start_time >= %s AND start_time < %s GROUP BY 1, 2 ORDER BY 1, 2""", (first, last)).fetchall()
    answered = [(r["bucket_unix_nano"], r["service"], r["request_count"], r["error_count"], r["input_tokens"], r["output_tokens"])
                for r in default["rows"]]
    assert answered == expected
    assert sum(r[2] for r in answered) == 13 * 9  # the first batch starts before the window


async def test_sampled_percentiles_read_one_time_slice_of_each_bucket(make_client: ClientFactory) -> None:
    """A span a second for 4 minutes, each lasting (its second of the minute) ms: with a
    sample of a quarter, each minute's percentiles come from one 15-second slice, a
    different quarter each minute, computed exactly (percentile_cont) over that slice."""
    db = create_database("obs_api_sample")
    try:
        t0 = ns("2025-06-05T10:00:00Z")
        spans = [Span(f"{n + 1:032x}", f"{n + 1:016x}", "tick", t0 + n * S, (n % 60 + 1) * MS, "clock") for n in range(240)]
        with db.connect() as conn:
            insert_spans(conn, spans)
            insert_rollups(conn, [Rollup(t0 + m * 60 * S, "clock", None, None, 60, 0, 0, 0, Decimal(0), 0, 0) for m in range(4)])
        window = {"start": "2025-06-05T10:00:00Z", "end": "2025-06-05T10:04:00Z", "bucket": "1m"}
        exact = await get_json(await make_client(db, cache_ttl=0), "/api/v1/metrics", **window)
        assert exact["latency_sample_fraction"] == 1.0
        assert [r["latency_ms"]["p50"] for r in exact["rows"]] == [30.5] * 4  # 1..60 ms
        sampled = await get_json(await make_client(db, percentile_sample_spans=60, cache_ttl=0), "/api/v1/metrics", **window)
        assert sampled["latency_sample_fraction"] == 0.25
        assert [r["request_count"] for r in sampled["rows"]] == [60] * 4  # totals stay exact
        # Bucket m covers seconds [15 q, 15 q + 15) of its minute for some quarter q: durations
        # 15 q + 1 .. 15 q + 15 ms, median 15 q + 8; every quarter once over four minutes.
        quarters = []
        for row in sampled["rows"]:
            p50, p99 = row["latency_ms"]["p50"], row["latency_ms"]["p99"]
            assert (p50 - 8) % 15 == 0 and p99 == pytest.approx(p50 - 7 + 14 * 0.99)
            quarters.append(int((p50 - 8) // 15))
        assert sorted(quarters) == [0, 1, 2, 3]
    finally:
        drop_database(db.name)
