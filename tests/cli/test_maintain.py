"""`observatory maintain` against real databases: PostgreSQL partitions and, where a
TimescaleDB server answers, retention and compression run at once."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from tests.cli.conftest import Cli, cli_env, query
from tests.conftest import Database
from tests.storage.test_timescaledb import tsdb  # noqa: F401 - the fixture: a migrated database on TimescaleDB, or a skip


def day(offset: int) -> str:
    return (datetime.now(timezone.utc).date() + timedelta(days=offset)).strftime("%Y%m%d")


def span_partitions(dsn: str) -> set[str]:
    rows = query(dsn, "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                      "WHERE i.inhparent = 'spans'::regclass")
    return {name for (name,) in rows}


def insert_span(dsn: str, age: str) -> None:
    query(dsn, f"""INSERT INTO spans (trace_id, span_id, name, service_name, start_time, end_time,
                   start_time_unix_nano, end_time_unix_nano, duration_ns)
                   VALUES (decode(md5(random()::text), 'hex'), '\\x0102030405060708', 'old', 'checkout',
                           now() - interval '{age}', now() - interval '{age}', 0, 0, 0) RETURNING 1""")


def test_partitions_are_made_ahead_and_dropped_past_retention(cli: Cli, fresh_database: Database) -> None:
    dsn = fresh_database.admin_dsn
    query(dsn, "SELECT observatory_ensure_partitions(current_date - 12, current_date - 11)")
    outcome = cli("maintain", "--partitions-ahead-days", "5", RETENTION_DAYS="10")
    assert outcome.code == 0, outcome.err
    assert "dropped 6" in outcome.out  # days -12 and -11 of spans, span_events and span_links
    names = span_partitions(dsn)
    assert {f"spans_p{day(n)}" for n in range(0, 6)} <= names
    assert not {f"spans_p{day(-12)}", f"spans_p{day(-11)}"} & names


def test_options_override_the_settings_for_one_run(cli: Cli, fresh_database: Database) -> None:
    query(fresh_database.admin_dsn, "SELECT observatory_ensure_partitions(current_date - 40, current_date - 40)")
    kept = cli("maintain", "--retention-days", "0", RETENTION_DAYS="10")
    assert kept.code == 0 and "retention off" in kept.out
    assert f"spans_p{day(-40)}" in span_partitions(fresh_database.admin_dsn)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--retention-days", "-1"], "expected a number of at least 0, got -1"),
        (["--chunk-interval-hours", "0"], "expected a number of at least 1, got 0"),
        (["--partitions-ahead-days", "soon"], "expected a whole number, got 'soon'"),
    ],
)
def test_bad_options_are_usage_errors(cli: Cli, argv: list[str], message: str) -> None:
    outcome = cli("maintain", *argv)
    assert outcome.code == 2 and message in outcome.err


def test_a_bad_setting_is_a_configuration_error(cli: Cli) -> None:
    outcome = cli("maintain", RETENTION_DAYS="a month")
    assert outcome.code == 2 and "RETENTION_DAYS must be an integer" in outcome.err


def test_an_unmigrated_database_is_told_to_migrate(cli: Cli, unmigrated_dsn: str) -> None:
    with psycopg.connect(psycopg.conninfo.make_conninfo(unmigrated_dsn, dbname="postgres"), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {psycopg.conninfo.conninfo_to_dict(unmigrated_dsn)['dbname']}")
    outcome = cli("maintain", **cli_env(unmigrated_dsn, "unused:"))
    assert outcome.code == 1 and "run `observatory migrate up` first" in outcome.err


def chunks(dsn: str) -> list[tuple[bool, bool]]:
    """(older than 30 days, compressed) for each chunk of spans."""
    return query(dsn, """SELECT range_end < now() - interval '30 days', is_compressed
                         FROM timescaledb_information.chunks WHERE hypertable_name = 'spans' ORDER BY range_start""")


def test_timescaledb_drops_and_compresses_now(cli: Cli, tsdb: Database) -> None:
    insert_span(tsdb.admin_dsn, "40 days")
    insert_span(tsdb.admin_dsn, "5 days")
    insert_span(tsdb.admin_dsn, "1 minute")
    assert chunks(tsdb.admin_dsn) == [(True, False), (False, False), (False, False)]
    outcome = cli("maintain", **cli_env(tsdb.admin_dsn, "unused:", RETENTION_DAYS="30", COMPRESS_AFTER_DAYS="2"))
    assert outcome.code == 0, outcome.err
    assert "dropping chunks past retention of spans" in outcome.out and "compressing chunks of spans" in outcome.out
    for rollup in ("span_rollups_1m", "span_rollups_1h"):  # retention reaches the rollups too
        assert f"dropping chunks past retention of {rollup}" in outcome.out
    assert chunks(tsdb.admin_dsn) == [(False, True), (False, False)]  # the old one gone, the 5-day one compressed
    assert query(tsdb.admin_dsn, "SELECT count(*) FROM spans") == [(2,)]


def test_timescaledb_policies_only_leaves_the_jobs_to_their_schedule(cli: Cli, tsdb: Database) -> None:
    insert_span(tsdb.admin_dsn, "40 days")
    outcome = cli("maintain", "--policies-only", **cli_env(tsdb.admin_dsn, "unused:", RETENTION_DAYS="30"))
    assert outcome.code == 0 and "hypertables:" in outcome.out and "job" not in outcome.out
    assert chunks(tsdb.admin_dsn) == [(True, False)]
