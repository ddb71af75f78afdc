"""The API over TimescaleDB: the same answers before and after the chunks are compressed,
and rollups that go when retention drops the spans they summarise.

Runs against TEST_TIMESCALE_DSN (default: 127.0.0.1:5433) and skips, saying why, without it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient

from storage.maintenance import maintain, run_policies_now
from storage.settings import RetentionSettings
from tests.api import scenario
from tests.api.conftest import ClientFactory, get_json
from tests.api.data import MS, S, Span, insert_event, insert_link, insert_spans
from tests.conftest import Database, create_database, drop_database
from tests.storage.test_timescaledb import TIMESCALE_DSN, _skip_reason

pytestmark = pytest.mark.timescaledb
DAY = 86_400 * S


@pytest.fixture
def tsdb() -> Iterator[Database]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    database = create_database("obs_tsdb_api", TIMESCALE_DSN)
    yield database
    drop_database(database.name, TIMESCALE_DSN)


def busy_spans() -> list[Span]:
    """Two hours of traffic of three services (10 traces a minute, three spans each) on 2025-06-04."""
    t0 = scenario.ns("2025-06-04T10:00:00Z")
    spans = []
    for n in range(1200):
        trace, start = f"{0xe0000000 + n:032x}", t0 + n * 6 * S
        service = ("chat", "search", "billing")[n % 3]
        root = f"{0xe000000000 + n:016x}"
        spans += [
            Span(trace, root, "POST /chat", start, (200 + n % 97) * MS, service, status_code=2 if n % 17 == 0 else 1),
            Span(trace, f"{0xe100000000 + n:016x}", "chat gpt-4o", start + 5 * MS, (150 + n % 89) * MS, service, root,
                 kind=3, llm_provider="openai", llm_request_model="gpt-4o" if n % 2 else "gpt-4o-mini",
                 input_tokens=10 + n % 50, output_tokens=n % 20, cost_total_usd=None, attributes={"user.tier": ("free", "pro")[n % 2]}),
            Span(trace, f"{0xe200000000 + n:016x}", "SELECT", start + 170 * MS, (n % 13 + 1) * MS, service, root),
        ]
    return spans


def seed(db: Database) -> None:
    with db.connect() as conn:
        insert_spans(conn, scenario.TRACE_SPANS + scenario.PAGER_SPANS + scenario.USAGE_SPANS + busy_spans())
        llm_a = scenario.TRACE_SPANS[0]
        insert_event(conn, llm_a, 0, llm_a.start_ns + 5 * MS, "gen_ai.content.prompt", {"gen_ai.prompt": "hello"})
        insert_link(conn, scenario.TRACE_SPANS[2], 0, scenario.TRACE_B, scenario.ROOT_B)
        conn.execute("CALL refresh_continuous_aggregate('span_rollups_1m', NULL, NULL)")
        conn.execute("CALL refresh_continuous_aggregate('span_rollups_1h', NULL, NULL)")


BUSY = {"start": "2025-06-04T10:00:00Z", "end": "2025-06-04T12:00:00Z"}
READS: list[tuple[str, dict[str, Any]]] = [
    (f"/api/v1/traces/{scenario.TRACE_A}", {}),
    (f"/api/v1/traces/{0xe0000000 + 7:032x}", {}),
    (f"/api/v1/traces/{0xe0000000 + 7:032x}", {"limit": "2"}),
    (f"/api/v1/spans/{scenario.LLM_A}", {"trace_id": scenario.TRACE_A}),
    (f"/api/v1/spans/{0xe100000000 + 5:016x}", BUSY),
    ("/api/v1/spans", {"start": "2025-06-01T00:00:00Z", "end": "2025-06-03T00:00:00Z", "limit": "7"}),
    ("/api/v1/spans", {**BUSY, "service": "search", "limit": "50"}),
    ("/api/v1/spans", {**BUSY, "model": "gpt-4o", "min_duration_ms": "200", "limit": "50"}),
    ("/api/v1/spans", {**BUSY, "attr.user.tier": "pro", "has_attr": "user.tier", "limit": "20", "sort": "start_time"}),
    ("/api/v1/spans", {**BUSY, "trace_id": f"{0xe0000000 + 9:032x}"}),
    ("/api/v1/traces", {"start": "2025-06-01T09:59:00Z", "end": "2025-06-01T10:10:00Z"}),
    ("/api/v1/traces", {**BUSY, "service": "billing", "limit": "25"}),
    ("/api/v1/traces", {**BUSY, "model": "gpt-4o", "status": "error"}),
    ("/api/v1/traces", {**BUSY, "min_cost_usd": "0", "sort": "-duration", "limit": "10"}),
    ("/api/v1/metrics", {**BUSY, "bucket": "15m", "group_by": "service"}),
    ("/api/v1/metrics", {"start": "2025-06-04T10:00:30Z", "end": "2025-06-04T11:59:30Z", "bucket": "1m", "model": "gpt-4o"}),
    ("/api/v1/metrics", {"start": "2025-06-03T10:00:30Z", "end": "2025-06-03T10:05:30Z"}),
    ("/api/v1/services", BUSY),
    ("/api/v1/models", BUSY),
]


async def answers(client: TestClient) -> list[Any]:
    found = []
    for path, params in READS:
        body = await get_json(client, path, **params)
        found.append(body)
        if path == "/api/v1/spans" and body["next_cursor"]:  # the second page too
            found.append(await get_json(client, path, **params, cursor=body["next_cursor"]))
    return found


async def test_answers_are_the_same_before_and_after_compression(tsdb: Database, make_client: ClientFactory) -> None:
    seed(tsdb)
    # The cache off; a small percentile sample so the sampled path is compared too.
    exact = await make_client(tsdb, cache_ttl=0)
    sampled = await make_client(tsdb, cache_ttl=0, percentile_sample_spans=200)
    before = await answers(exact)
    before_sampled = await get_json(sampled, "/api/v1/metrics", **BUSY, bucket="1h", group_by="model")
    assert before_sampled["latency_sample_fraction"] < 1 and before_sampled["rows"]
    assert before[1]["span_count"] == 3 and before[2]["next_cursor"] is not None
    with psycopg.connect(tsdb.admin_dsn, autocommit=True) as admin:
        for table in ("spans", "span_events", "span_links"):
            admin.execute(f"SELECT compress_chunk(c) FROM show_chunks('{table}') c")
        uncompressed = admin.execute("SELECT count(*) FROM timescaledb_information.chunks WHERE NOT is_compressed "
                                     "AND hypertable_name IN ('spans', 'span_events', 'span_links')").fetchone()
        assert uncompressed == (0,)
    after = await answers(exact)
    for (path, params), one, two in zip(READS, before, after):
        assert one == two, (path, params)
    assert after == before
    assert await get_json(sampled, "/api/v1/metrics", **BUSY, bucket="1h", group_by="model") == before_sampled


def _utc(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / S, tz=timezone.utc)


def test_rollups_go_with_the_spans_retention_drops(tsdb: Database) -> None:
    now = int(datetime.now(timezone.utc).timestamp()) * S
    with psycopg.connect(tsdb.app_dsn, autocommit=True) as app:
        maintain(app, RetentionSettings(retention_days=2, compress_after_days=1, chunk_interval_hours=24))
    with psycopg.connect(tsdb.admin_dsn, autocommit=True) as admin:
        # A span every six hours for six days.
        insert_spans(admin, [Span(f"{n + 1:032x}", f"{n + 1:016x}", "tick", now - n * 6 * 3600 * S, MS, "clock") for n in range(24)])
        admin.execute("CALL refresh_continuous_aggregate('span_rollups_1m', NULL, NULL)")
        admin.execute("CALL refresh_continuous_aggregate('span_rollups_1h', NULL, NULL)")
        intervals = admin.execute("""SELECT c.view_name, d.time_interval FROM timescaledb_information.continuous_aggregates c
                                     JOIN timescaledb_information.dimensions d ON d.hypertable_name = c.materialization_hypertable_name
                                     ORDER BY 1""").fetchall()
        assert [(v, i.total_seconds()) for v, i in intervals] == [("span_rollups_1h", 86400), ("span_rollups_1m", 86400)]
        refresh = admin.execute("""SELECT hypertable_name, config->>'start_offset' FROM timescaledb_information.jobs
                                   WHERE proc_name = 'policy_refresh_continuous_aggregate' ORDER BY 1""").fetchall()
        assert refresh == [("span_rollups_1h", "2 days"), ("span_rollups_1m", "2 days")]  # never past retention
        run_policies_now(admin)
        oldest_span = admin.execute("SELECT min(start_time) FROM spans").fetchone()[0]
        assert oldest_span >= _utc(now - 4 * DAY)  # chunks wholly older than 2 days are gone
        for tier in ("span_rollups_1m", "span_rollups_1h"):
            oldest, total = admin.execute(f"SELECT min(bucket), sum(span_count) FROM {tier}").fetchone()
            # Every rollup left summarises spans still stored: none outlives the spans by a chunk.
            assert oldest >= _utc(now - 4 * DAY) and total == admin.execute("SELECT count(*) FROM spans").fetchone()[0], tier
        # A refresh now (as the policy runs it) changes nothing: its window stays inside what is kept.
        jobs = admin.execute("""SELECT job_id FROM timescaledb_information.jobs
                                WHERE proc_name = 'policy_refresh_continuous_aggregate' ORDER BY hypertable_name DESC""").fetchall()
        before = admin.execute("SELECT bucket, span_count FROM span_rollups_1h ORDER BY 1").fetchall()
        for (job,) in jobs:
            admin.execute("CALL run_job(%s)", (job,))
        assert admin.execute("SELECT bucket, span_count FROM span_rollups_1h ORDER BY 1").fetchall() == before
