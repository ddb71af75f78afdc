"""Migration 0020: a stand-in span_rollups_1m that yields to the storage migrations' own."""

from __future__ import annotations

import psycopg

from storage.migrations import Migrator
from tests.conftest import Database

STUB = 20


def _kind(conn: psycopg.Connection) -> str | None:
    row = conn.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass('span_rollups_1m')").fetchone()
    return row[0] if row else None


def test_the_stub_is_made_readable_and_dropped_by_its_down(fresh_database: Database) -> None:
    with psycopg.connect(fresh_database.admin_dsn, autocommit=True) as conn:
        assert _kind(conn) == "r"
        assert conn.execute("SELECT has_table_privilege('observatory_readonly', 'span_rollups_1m', 'SELECT')").fetchone()[0]
        assert not conn.execute("SELECT has_table_privilege('observatory_readonly', 'span_rollups_1m', 'INSERT')").fetchone()[0]
    with psycopg.connect(fresh_database.admin_dsn) as conn, Migrator(conn) as migrator:
        assert [m.version for m in migrator.down(1)] == [STUB]
        assert _kind(conn) is None
        migrator.up()
        assert _kind(conn) == "r"


def test_an_existing_rollup_relation_is_left_alone(fresh_database: Database) -> None:
    with psycopg.connect(fresh_database.admin_dsn) as conn, Migrator(conn) as migrator:
        migrator.down(1)
        # What the storage migrations make instead (here a view standing in for a continuous aggregate).
        conn.execute("CREATE VIEW span_rollups_1m AS SELECT now() AS bucket, 'svc'::text AS service_name")
        conn.commit()
        migrator.up()
        assert _kind(conn) == "v"
        migrator.down(1)
        assert _kind(conn) == "v"
