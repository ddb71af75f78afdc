"""Backup, reset and restore on TimescaleDB: hypertables, compressed chunks and continuous
aggregates come back, and the database does not stay in restoring mode.

Needs a server with the timescaledb extension preloaded: TEST_TIMESCALE_DSN (default
postgresql://postgres@127.0.0.1:5433/postgres). Skipped, with the reason, without one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.cli.conftest import Cli, cli_env, query

pytestmark = pytest.mark.timescaledb

SERVER = os.environ.get("TEST_TIMESCALE_DSN", "postgresql://postgres@127.0.0.1:5433/postgres")
UP = {
    "0001_metrics": (
        "CREATE EXTENSION IF NOT EXISTS timescaledb;\n"
        "CREATE TABLE metrics (time timestamptz NOT NULL, device text NOT NULL, value double precision);\n"
        "SELECT create_hypertable('metrics', 'time', chunk_time_interval => interval '1 day');\n",
        "DROP TABLE metrics;\n",
    ),
    "0002_hourly": (
        "CREATE MATERIALIZED VIEW metrics_hourly WITH (timescaledb.continuous) AS\n"
        "SELECT time_bucket('1 hour', time) AS bucket, device, count(*) AS n FROM metrics GROUP BY 1, 2 WITH NO DATA;\n",
        "DROP MATERIALIZED VIEW metrics_hourly;\n",
    ),
}
STATE = [
    "SELECT count(*), round(sum(value)::numeric, 6) FROM metrics",
    "SELECT count(*), sum(n) FROM metrics_hourly",
    "SELECT count(*) FROM timescaledb_information.chunks WHERE is_compressed",
    "SELECT hypertable_name FROM timescaledb_information.hypertables ORDER BY 1",
    "SELECT current_setting('timescaledb.restoring')",
]


@pytest.fixture
def timescale_dsn() -> Iterator[str]:
    try:
        with psycopg.connect(SERVER, autocommit=True, connect_timeout=3) as conn:
            if conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone() is None:
                pytest.skip("the server at TEST_TIMESCALE_DSN has no timescaledb extension")
            name = f"obs_test_cli_ts_{uuid.uuid4().hex[:10]}"
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.OperationalError as exc:
        pytest.skip(f"no TimescaleDB server at TEST_TIMESCALE_DSN ({str(exc).strip().splitlines()[0]})")
    yield psycopg.conninfo.make_conninfo(SERVER, dbname=name)
    with psycopg.connect(SERVER, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _fill(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("""INSERT INTO metrics SELECT now() - i * interval '10 seconds', 'd' || (i % 5), i / 7.0
                        FROM generate_series(1, 20000) i""")
        conn.execute("CALL refresh_continuous_aggregate('metrics_hourly', NULL, NULL)")  # refuses a transaction block
        conn.execute("ALTER TABLE metrics SET (timescaledb.compress)")
        conn.execute("SELECT count(compress_chunk(c)) FROM show_chunks('metrics', older_than => interval '1 day') c")


def test_backup_reset_restore_on_timescaledb(cli: Cli, timescale_dsn: str, tmp_path: Path) -> None:
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    for name, (up, down) in UP.items():
        (migrations / f"{name}.up.sql").write_text(up)
        (migrations / f"{name}.down.sql").write_text(down)
    env = {**cli_env(timescale_dsn, "unused:"), "MIGRATIONS_DIR": str(migrations)}
    assert cli("migrate", "up", **env).code == 0
    _fill(timescale_dsn)
    before = [query(timescale_dsn, q) for q in STATE]
    assert before[0][0][0] == 20000 and before[2][0][0] >= 1

    dump = tmp_path / "ts.dump"
    backup = cli("backup", str(dump), **env)
    assert backup.code == 0 and "(TimescaleDB " in backup.out
    assert cli("reset", "--confirm", **env).code == 0
    assert query(timescale_dsn, "SELECT count(*) FROM metrics") == [(0,)]
    restored = cli("restore", str(dump), **env)
    assert restored.code == 0, restored.err
    assert [query(timescale_dsn, q) for q in STATE] == before
