"""The TimescaleDB path: hypertables, compression, policies, the continuous aggregate.

Runs against TEST_TIMESCALE_DSN (default: a cluster on 127.0.0.1:5433 that preloads
timescaledb) and skips, saying why, when that server does not answer or lacks the extension.
"""

from __future__ import annotations

import os
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
            ("span_events", "span_start_time", 1), ("span_links", "span_start_time", 1), ("spans", "start_time", 1)]
        segment = conn.execute("""SELECT attname FROM timescaledb_information.compression_settings
                                  WHERE hypertable_name = 'spans' AND segmentby_column_index = 1""").fetchone()
        assert segment == ("service_name",)
        cagg = conn.execute("""SELECT materialized_only FROM timescaledb_information.continuous_aggregates
                               WHERE view_name = 'span_rollups_1m'""").fetchone()
        assert cagg == (False,)  # real time: the API sees spans written a moment ago


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
    assert rollups == [("checkout", None, None, 20, 0, 0), ("checkout", "gpt-4o-mini", "openai", 10, 1000, 200)]


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
        rows = conn.execute("""SELECT hypertable_name, proc_name, coalesce(config->>'drop_after', config->>'compress_after')
                               FROM timescaledb_information.jobs WHERE proc_name IN ('policy_retention', 'policy_compression')""")
        return {(h if not h.startswith("_") else "rollups", p): v for h, p, v in rows.fetchall()}

    with psycopg.connect(tsdb.app_dsn, autocommit=True) as app:
        maintain(app, RetentionSettings(retention_days=30, compress_after_days=2))
        first = policies(app)
        assert first[("spans", "policy_retention")] == "30 days"
        assert first[("spans", "policy_compression")] == "2 days"
        assert "0 policies changed" in maintain(app, RetentionSettings(retention_days=30, compress_after_days=2))
        maintain(app, RetentionSettings(retention_days=7, compress_after_days=0, chunk_interval_hours=6))
        second = policies(app)
        assert second[("span_links", "policy_retention")] == "7 days"
        assert not any(p == "policy_compression" for _, p in second)
        interval = app.execute("""SELECT time_interval FROM timescaledb_information.dimensions
                                  WHERE hypertable_name = 'spans'""").fetchone()
        assert interval is not None and interval[0].total_seconds() == 6 * 3600


def test_down_removes_hypertables_and_the_aggregate_and_up_rebuilds_them(tsdb: Database) -> None:
    with psycopg.connect(tsdb.admin_dsn) as conn, Migrator(conn) as migrator:
        assert len(migrator.down()) == 1
        assert conn.execute("SELECT to_regclass('spans'), to_regclass('span_rollups_1m')").fetchone() == (None, None)
        assert len(migrator.up()) == 1
        assert conn.execute("SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_name IN "
                            "('spans', 'span_events', 'span_links')").fetchone() == (3,)
