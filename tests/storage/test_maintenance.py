"""observatory_maintain on plain PostgreSQL: partitions ahead, retention, what bad arguments get."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from storage.maintenance import maintain
from storage.settings import RetentionSettings
from tests.conftest import Database


def partitions(conn: psycopg.Connection, parent: str) -> set[str]:
    rows = conn.execute("""
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = %s::regclass""", (parent,)).fetchall()
    return {r[0] for r in rows}


def day(offset: int) -> str:
    return (datetime.now(timezone.utc).date() + timedelta(days=offset)).strftime("%Y%m%d")


def test_partitions_are_made_ahead_and_dropped_past_retention(fresh_database: Database) -> None:
    with psycopg.connect(fresh_database.admin_dsn, autocommit=True) as admin:
        admin.execute("SELECT observatory_ensure_partitions(current_date - 12, current_date - 8)")
        admin.execute("""INSERT INTO spans (trace_id, span_id, name, service_name, start_time, end_time,
                         start_time_unix_nano, end_time_unix_nano, duration_ns)
                         VALUES ('\\x01', '\\x02', 'old', 's', now() - interval '3 years', now() - interval '3 years', 0, 0, 0)""")
        for tier, unit in (("span_rollups_1m", "minute"), ("span_rollups_1h", "hour")):
            admin.execute(f"""INSERT INTO {tier} VALUES (date_trunc('{unit}', now() - interval '20 days'), 's', NULL, NULL, 1, 0, 0, 0, 0, 1, 1),
                                                        (date_trunc('{unit}', now()), 's', NULL, NULL, 1, 0, 0, 0, 0, 1, 1)""")
    with psycopg.connect(fresh_database.app_dsn, autocommit=True) as app:  # the writer's role can run it
        summary = maintain(app, RetentionSettings(retention_days=10, partitions_ahead_days=2))
        assert "dropped 6" in summary  # days -12, -11 of three tables
        for parent in ("spans", "span_events", "span_links"):
            names = partitions(app, parent)
            assert {f"{parent}_p{day(n)}" for n in (-10, -9, -8, -1, 0, 1, 2)} <= names
            assert not {f"{parent}_p{day(n)}" for n in (-12, -11)} & names
        assert app.execute("SELECT count(*) FROM spans").fetchone() == (0,)  # the default partition too
        assert app.execute("SELECT (SELECT count(*) FROM span_rollups_1m), (SELECT count(*) FROM span_rollups_1h)").fetchone() == (1, 1)


def test_zero_retention_keeps_everything(fresh_database: Database) -> None:
    with psycopg.connect(fresh_database.app_dsn, autocommit=True) as app:
        app.execute("SELECT observatory_ensure_partitions(current_date - 900, current_date - 800)")
        assert "retention off" in maintain(app, RetentionSettings(retention_days=0))
        assert f"spans_p{day(-900)}" in partitions(app, "spans")


def test_negative_arguments_are_refused_with_a_message(fresh_database: Database) -> None:
    with psycopg.connect(fresh_database.app_dsn, autocommit=True) as app:
        with pytest.raises(psycopg.errors.RaiseException, match="must not be negative"):
            app.execute("SELECT observatory_maintain(-1, 0, interval '1 day', 0)")


def test_the_readonly_role_cannot_run_maintenance(fresh_database: Database) -> None:
    with psycopg.connect(fresh_database.readonly_dsn, autocommit=True) as ro:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            ro.execute("SELECT observatory_maintain(1, 0, interval '1 day', 0)")


@pytest.mark.parametrize(("rate", "memory_mb", "given", "hours"), [
    (0, 1024, 0, 24),  # no rate given: daily chunks
    (4, 1024, 0, 24),  # 4 spans/s x 1.7 KB fill 1 GiB in ~44 h: capped at a day
    (50, 1024, 0, 3),  # 1 GiB / (50 x 1,700 B) = 12,632 s = 3.5 h
    (50, 4096, 0, 14),  # four times the memory: 14.03 h
    (5000, 1024, 0, 1),  # never below an hour
    (5000, 1024, 6, 6),  # CHUNK_INTERVAL_HOURS, when given, wins
])
def test_the_chunk_interval_follows_the_ingest_rate(rate: float, memory_mb: int, given: int, hours: int) -> None:
    settings = RetentionSettings(expected_spans_per_second=rate, chunk_memory_mb=memory_mb, chunk_interval_hours=given)
    assert settings.chunk_hours == hours
