"""The TimescaleDB path: hypertables, compression, policies, the continuous aggregates.

Runs against TEST_TIMESCALE_DSN (default: a cluster on 127.0.0.1:5433 that preloads
timescaledb) and skips, saying why, when that server does not answer or lacks the extension.
"""

from __future__ import annotations

import os
from decimal import Decimal
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest

from storage.decode import decode
from storage.maintenance import maintain
from storage.migrations import Migrator
from storage.settings import RetentionSettings
from storage.writer import SpanWriter
from tests.conftest import Database, create_database, drop_database
from tests.storage.support import NOW_NS, request, trace_ids
from tests.support import SHIPPED_MIGRATIONS, wait_for

pytestmark = pytest.mark.timescaledb
TIMESCALE_DSN = os.environ.get("TEST_TIMESCALE_DSN", "postgresql://postgres@127.0.0.1:5433/postgres")


def _skip_reason() -> str | None:
    try:
        with psycopg.connect(TIMESCALE_DSN, connect_timeout=2) as conn:
            preload = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
            available = conn.execute("SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
    except psycopg.OperationalError as exc:
        return f"no TimescaleDB server at TEST_TIMESCALE_DSN ({str(exc).strip().splitlines()[0]})"
    if available is None or "timescaledb" not in (preload or ("",))[0]:
        return "the server at TEST_TIMESCALE_DSN does not preload the timescaledb extension"
    return None


@pytest.fixture
def tsdb() -> Iterator[Database]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    database = create_database("obs_tsdb", TIMESCALE_DSN)
    yield database
    drop_database(database.name, TIMESCALE_DSN)


@pytest.fixture
async def writer(tsdb: Database) -> AsyncIterator[SpanWriter]:
    conn = await psycopg.AsyncConnection.connect(tsdb.app_dsn, autocommit=True, options="-c TimeZone=UTC")
    yield SpanWriter(conn, retention_days=30)
    await conn.close()


def test_span_tables_are_daily_hypertables_compressed_by_service(tsdb: Database) -> None:
    with psycopg.connect(tsdb.admin_dsn) as conn:
        dims = conn.execute("""SELECT hypertable_name, column_name, time_interval FROM timescaledb_information.dimensions
                               ORDER BY 1""").fetchall()
        assert [(d[0], d[1], d[2].days) for d in dims if not d[0].startswith("_")] == [
            ("logs", "time", 1), ("metric_points", "time", 1),
            ("span_events", "span_start_time", 1), ("span_links", "span_start_time", 1), ("spans", "start_time", 1)]
        segment = conn.execute("""SELECT attname FROM timescaledb_information.compression_settings
                                  WHERE hypertable_name = 'spans' AND segmentby_column_index = 1""").fetchone()
        assert segment == ("service_name",)
        caggs = conn.execute("""SELECT view_name, materialized_only FROM timescaledb_information.continuous_aggregates
                                ORDER BY view_name""").fetchall()
        assert caggs == [("span_rollups_1h", False), ("span_rollups_1m", False)]  # real time: spans written a moment ago


def test_the_hourly_aggregate_is_built_on_the_per_minute_one_and_refreshed_after_it(tsdb: Database) -> None:
    with psycopg.connect(tsdb.admin_dsn) as conn:
        parent = conn.execute("""SELECT h.hypertable_name = m.materialization_hypertable_name
                                 FROM timescaledb_information.continuous_aggregates h,
                                      timescaledb_information.continuous_aggregates m
                                 WHERE h.view_name = 'span_rollups_1h' AND m.view_name = 'span_rollups_1m'""").fetchone()
        assert parent == (True,)  # hierarchical: it reads the per-minute rows, never the spans
        policies = conn.execute("""
            SELECT hypertable_name, config->>'start_offset', config->>'end_offset', schedule_interval
            FROM timescaledb_information.jobs WHERE proc_name = 'policy_refresh_continuous_aggregate' ORDER BY 1""").fetchall()
        assert [(v, start, end, every.total_seconds()) for v, start, end, every in policies] == [
            ("span_rollups_1h", "3 days", "01:00:00", 60), ("span_rollups_1m", "2 days", "00:01:00", 60)]


async def test_writes_are_idempotent_and_the_continuous_aggregate_counts_them_once(
    tsdb: Database, writer: SpanWriter,
) -> None:
    rows = decode(request(trace_ids(10)).SerializeToString())
    assert await writer.write(rows) == 30
    assert await writer.write(rows) == 0
    assert writer.timescaledb
    with psycopg.connect(tsdb.readonly_dsn) as ro:
        rollups = ro.execute("""SELECT service_name, model, provider, span_count, input_tokens, output_tokens
                                FROM span_rollups_1m ORDER BY model NULLS FIRST""").fetchall()
        hourly = ro.execute("""SELECT service_name, model, provider, span_count, input_tokens, output_tokens
                               FROM span_rollups_1h ORDER BY model NULLS FIRST""").fetchall()
    assert rollups == hourly == [("checkout", None, None, 20, 0, 0), ("checkout", "gpt-4o-mini", "openai", 10, 1000, 200)]


async def test_both_aggregates_equal_a_group_by_over_the_spans_once_refreshed(tsdb: Database, writer: SpanWriter) -> None:
    hour = 3_600_000_000_000
    for n in range(6):  # 50 minutes apart, three hours back: hours with one or two batches
        rows = decode(request(trace_ids(4), service=f"svc{n % 2}", start_ns=NOW_NS - 3 * hour - n * hour * 5 // 6).SerializeToString())
        await writer.write(rows)
        await writer.write(rows)  # redelivered: adds nothing
    with psycopg.connect(tsdb.admin_dsn, autocommit=True) as admin:
        # Finest first, as the policies run: the hourly refresh reads what the per-minute one materialized.
        admin.execute("CALL refresh_continuous_aggregate('span_rollups_1m', NULL, now() - interval '1 hour')")
        admin.execute("CALL refresh_continuous_aggregate('span_rollups_1h', NULL, now() - interval '1 hour')")
        watermark = admin.execute("SELECT _timescaledb_functions.to_timestamp(_timescaledb_functions.cagg_watermark(mat_hypertable_id)) "
                                  "FROM _timescaledb_catalog.continuous_agg WHERE user_view_name = 'span_rollups_1h'").fetchone()
        assert watermark is not None and watermark[0].timestamp() * 10**9 > NOW_NS - 3 * hour  # the rows below are materialized
        for unit, tier in (("minute", "span_rollups_1m"), ("hour", "span_rollups_1h")):
            expected = admin.execute(f"""
                SELECT date_trunc('{unit}', start_time), service_name, coalesce(llm_request_model, llm_response_model),
                       llm_provider, count(*), count(*) FILTER (WHERE status_code = 2), coalesce(sum(input_tokens), 0)::bigint,
                       coalesce(sum(output_tokens), 0)::bigint, sum(duration_ns)::bigint, max(duration_ns)
                FROM spans GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4""").fetchall()
            stored = admin.execute(f"""SELECT bucket, service_name, model, provider, span_count, error_count, input_tokens,
                                              output_tokens, duration_sum_ns, duration_max_ns FROM {tier} ORDER BY 1, 2, 3, 4""").fetchall()
            assert stored == expected and sum(row[4] for row in stored) == 6 * 12


async def test_redelivery_into_a_compressed_chunk_adds_nothing(tsdb: Database, writer: SpanWriter) -> None:
    old = NOW_NS - 3 * 86_400 * 10**9
    rows = decode(request(trace_ids(5), start_ns=old).SerializeToString())
    assert await writer.write(rows) == 15
    with psycopg.connect(tsdb.admin_dsn, autocommit=True) as admin:
        compressed = admin.execute("SELECT count(compress_chunk(c)) FROM show_chunks('spans') c").fetchone()
        assert compressed == (1,)
    assert await writer.write(rows) == 0
    with psycopg.connect(tsdb.admin_dsn) as admin:
        assert admin.execute("SELECT count(*) FROM spans").fetchone() == (15,)


def test_maintenance_sets_and_changes_the_policies(tsdb: Database) -> None:
    def policies(conn: psycopg.Connection) -> dict[tuple[str, str], str]:
        rows = conn.execute("""SELECT coalesce(c.view_name, j.hypertable_name), proc_name,
                                      coalesce(config->>'drop_after', config->>'compress_after')
                               FROM timescaledb_information.jobs j
                               LEFT JOIN timescaledb_information.continuous_aggregates c
                                      ON c.materialization_hypertable_name = j.hypertable_name
                               WHERE proc_name IN ('policy_retention', 'policy_compression')""")
        return {(h, p): v for h, p, v in rows.fetchall()}

    with psycopg.connect(tsdb.app_dsn, autocommit=True) as app:
        maintain(app, RetentionSettings(retention_days=30, compress_after_days=2))
        first = policies(app)
        assert first[("spans", "policy_retention")] == "30 days"
        assert first[("spans", "policy_compression")] == "2 days"
        assert first[("span_rollups_1m", "policy_retention")] == first[("span_rollups_1h", "policy_retention")] == "30 days"
        assert "0 policies changed" in maintain(app, RetentionSettings(retention_days=30, compress_after_days=2))
        maintain(app, RetentionSettings(retention_days=7, compress_after_days=0, chunk_interval_hours=6))
        second = policies(app)
        assert second[("span_links", "policy_retention")] == second[("span_rollups_1h", "policy_retention")] == "7 days"
        assert not any(p == "policy_compression" for _, p in second)
        interval = app.execute("""SELECT time_interval FROM timescaledb_information.dimensions
                                  WHERE hypertable_name = 'spans'""").fetchone()
        assert interval is not None and interval[0].total_seconds() == 6 * 3600


def test_down_removes_hypertables_and_the_aggregate_and_up_rebuilds_them(tsdb: Database) -> None:
    with psycopg.connect(tsdb.admin_dsn) as conn, Migrator(conn) as migrator:
        assert len(migrator.down(steps=None, to=0)) == len(SHIPPED_MIGRATIONS)
        assert conn.execute("SELECT to_regclass('spans'), to_regclass('span_rollups_1m'), to_regclass('span_rollups_1h'),"
                            " to_regclass('logs'), to_regclass('metric_points')").fetchone() == (None,) * 5
        assert len(migrator.up()) == len(SHIPPED_MIGRATIONS)
        assert conn.execute("SELECT count(*) FROM timescaledb_information.continuous_aggregates").fetchone() == (2,)
        assert conn.execute("SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_name IN "
                            "('spans', 'span_events', 'span_links')").fetchone() == (3,)


async def test_log_records_and_points_are_idempotent_also_in_compressed_chunks(tsdb: Database) -> None:
    from storage.signals import LOG_STORAGE, METRIC_STORAGE  # noqa: PLC0415
    from tests.collector.otlp import make_logs_request, make_metrics_request  # noqa: PLC0415

    old = NOW_NS - 3 * 86_400 * 10**9
    logs = make_logs_request(records=4)
    for n, record in enumerate(logs.resource_logs[0].scope_logs[0].log_records):
        record.time_unix_nano = record.observed_time_unix_nano = old + n
    points = make_metrics_request(points=2)
    for metric in points.resource_metrics[0].scope_metrics[0].metrics:
        for n, point in enumerate(getattr(metric, metric.WhichOneof("data")).data_points):
            point.time_unix_nano = old + n
    conn = await psycopg.AsyncConnection.connect(tsdb.app_dsn, autocommit=True, options="-c TimeZone=UTC")
    try:
        for storage, request, table, count in ((LOG_STORAGE, logs, "logs", 4), (METRIC_STORAGE, points, "metric_points", 6)):
            writer = storage.writer(conn, 30)
            rows = storage.rows_of(list(storage.units(storage.parse_request(request.SerializeToString()))))
            assert await writer.write(rows) == count
            with psycopg.connect(tsdb.admin_dsn, autocommit=True) as admin:
                assert admin.execute(f"SELECT count(compress_chunk(c)) FROM show_chunks('{table}') c").fetchone() == (1,)
            assert await writer.write(rows) == 0  # a redelivery meets the compressed rows' keys
            with psycopg.connect(tsdb.admin_dsn) as admin:
                assert admin.execute(f"SELECT count(*) FROM {table}").fetchone() == (count,)  # noqa: S608 - fixed names
    finally:
        await conn.close()
    with psycopg.connect(tsdb.app_dsn, autocommit=True) as app:
        maintain(app, RetentionSettings(retention_days=30, compress_after_days=2))
        jobs = app.execute("""SELECT hypertable_name, proc_name FROM timescaledb_information.jobs
                              WHERE hypertable_name IN ('logs', 'metric_points') ORDER BY 1, 2""").fetchall()
    assert jobs == [("logs", "policy_compression"), ("logs", "policy_retention"),
                    ("metric_points", "policy_compression"), ("metric_points", "policy_retention")]


async def test_aggregate_sums_saturate_and_the_one_off_job_materializes_history(tsdb: Database, writer: SpanWriter) -> None:
    long = request(trace_ids(10))
    for span in long.resource_spans[0].scope_spans[0].spans:
        span.end_time_unix_nano = span.start_time_unix_nano + (NOW_NS - 1)  # 56 years: a few pass 2^63 ns
    assert await writer.write(decode(long.SerializeToString())) == 30
    old = request(trace_ids(5), start_ns=NOW_NS - 10 * 86_400 * 10**9)  # before the refresh policies' window
    assert await writer.write(decode(old.SerializeToString())) == 15
    with psycopg.connect(tsdb.admin_dsn, autocommit=True) as conn:
        (job,) = conn.execute("SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = 'observatory_refresh_rollups'").fetchone()
        conn.execute("CALL run_job(%s)", (job,))  # what the scheduler does once, at once, after the migration
        assert conn.execute("SELECT scheduled FROM timescaledb_information.jobs WHERE job_id = %s", (job,)).fetchone() == (False,)
        for tier in ("span_rollups_1m", "span_rollups_1h"):
            conn.execute(f"CALL refresh_continuous_aggregate('{tier}', NULL, NULL)")
            assert conn.execute(f"SELECT sum(span_count)::int8, max(duration_sum_ns) FROM {tier}").fetchone() == (45, 2**63 - 1)


def _rollup_rows(conn: psycopg.Connection, tier: str) -> list[tuple[object, ...]]:
    return conn.execute(f"""SELECT bucket, service_name, model, span_count, input_tokens, duration_sum_ns, cost_usd
                            FROM {tier} ORDER BY 1, 2, 3""").fetchall()


def _history_refreshed(conn: psycopg.Connection) -> None:
    """The one-off history job has run once: by the scheduler, or (when a refresh policy's run
    collided with it and it waits for its retry) by hand, with the policies held still."""
    conn.execute("SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs "
                 "WHERE proc_name = 'policy_refresh_continuous_aggregate'")
    (job,) = conn.execute("SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = 'observatory_refresh_rollups'"
                          ).fetchone()
    wait_for(lambda: conn.execute("""SELECT count(*) FROM timescaledb_information.job_stats s
                                     JOIN timescaledb_information.jobs j USING (job_id)
                                     WHERE s.job_status = 'Running' AND (j.hypertable_name LIKE 'span_rollups%%' OR j.job_id = %s)""",
                                  (job,)).fetchone() == (0,), 60, 0.2, "no refresh running")
    if conn.execute("SELECT scheduled FROM timescaledb_information.jobs WHERE job_id = %s", (job,)).fetchone() == (True,):
        conn.execute("CALL run_job(%s)", (job,))
    assert conn.execute("SELECT scheduled FROM timescaledb_information.jobs WHERE job_id = %s", (job,)).fetchone() == (False,)


def test_migration_0003_on_an_existing_install_keeps_rollup_history(tsdb: Database) -> None:
    """0003 makes the aggregates again (empty); the one-off job brings back the history the
    refresh policies never reach, with 0002's saturating sums kept, and so does its down."""
    with psycopg.connect(tsdb.admin_dsn, autocommit=True) as conn:
        with Migrator(conn) as migrator:
            migrator.down(steps=None, to=2)  # an install of 0002: aggregates without cost components
        # Ten and twenty days old (beyond every refresh window), and an hour old; the durations
        # of the ten-day-old minute sum past 2^63 ns.
        conn.execute("""
            INSERT INTO spans (trace_id, span_id, name, service_name, start_time, end_time, start_time_unix_nano,
                               end_time_unix_nano, duration_ns, llm_request_model, input_tokens, cost_total_usd)
            SELECT '\\x01'::bytea, int8send(n), 'chat', 'svc', t, t, 0, 0,
                   CASE WHEN n < 3 THEN 4611686018427387904 ELSE 1000 END, 'gpt-4o-mini', 100, 0.25
            FROM generate_series(0, 8) n,
                 LATERAL (SELECT date_trunc('hour', now()) - CASE WHEN n < 3 THEN interval '10 days'
                                                                  WHEN n < 6 THEN interval '20 days'
                                                                  ELSE interval '1 hour' END AS t) b""")
        _history_refreshed(conn)  # 0002's job, as it ran on that install
        for tier in ("span_rollups_1m", "span_rollups_1h"):
            conn.execute(f"CALL refresh_continuous_aggregate('{tier}', NULL, NULL)")
        before = {tier: _rollup_rows(conn, tier) for tier in ("span_rollups_1m", "span_rollups_1h")}
        assert [row[3:] for tier in before for row in before[tier]] == [
            (3, 300, 3000, Decimal("0.75")), (3, 300, 2**63 - 1, Decimal("0.75")), (3, 300, 3000, Decimal("0.75"))] * 2

        with Migrator(conn) as migrator:
            assert [m.version for m in migrator.up()] == [v for v in SHIPPED_MIGRATIONS if v > 2]
        assert conn.execute("""SELECT count(*) FROM timescaledb_information.jobs
                               WHERE proc_name = 'observatory_refresh_rollups'""").fetchone() == (1,)
        _history_refreshed(conn)
        # The refresh policies then materialise the last days, which moves the watermark past
        # the history: from then on old buckets are read only from what was materialized.
        conn.execute("CALL refresh_continuous_aggregate('span_rollups_1m', now() - interval '2 days', NULL)")
        conn.execute("CALL refresh_continuous_aggregate('span_rollups_1h', now() - interval '3 days', NULL)")
        for tier, rows in before.items():
            assert _rollup_rows(conn, tier) == rows
            # Stored before 0003: legacy totals, their parts unknown.
            assert conn.execute(f"SELECT sum(cost_other_usd), sum(cost_input_usd) FROM {tier}").fetchone() == (
                Decimal("2.25"), Decimal(0))

        with Migrator(conn) as migrator:
            migrator.down(steps=None, to=2)  # and back: 0002's aggregates, refreshed by its job
        _history_refreshed(conn)
        for tier, rows in before.items():
            assert _rollup_rows(conn, tier) == rows
        assert conn.execute("""SELECT count(*) FROM information_schema.columns
                               WHERE table_name = 'span_rollups_1m' AND column_name = 'cost_other_usd'""").fetchone() == (0,)
