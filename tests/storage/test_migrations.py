"""The migration on a cluster of its own: concurrent migrators of several databases, down and up."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from storage.migrations import Migrator
from tests.infra import PrivatePostgres


@pytest.fixture
def server(private_postgres: PrivatePostgres) -> PrivatePostgres:
    return private_postgres

def _migrate(dsn: str) -> int:
    with psycopg.connect(dsn) as conn, Migrator(conn) as migrator:
        return len(migrator.up())


def test_databases_of_one_fresh_cluster_migrate_concurrently(server: PrivatePostgres) -> None:
    # Roles and role settings are cluster-wide: the first migrators race to create them.
    names = [f"tenant{n}" for n in range(6)]
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        for name in names:
            conn.execute(f"CREATE DATABASE {name}")
    dsns = [server.dsn.rsplit("/", 1)[0] + f"/{name}" for name in names]
    with ThreadPoolExecutor(len(dsns)) as pool:
        assert list(pool.map(_migrate, dsns)) == [1] * len(dsns)
    with psycopg.connect(server.dsn) as conn:
        setting = conn.execute("""SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole
                                  WHERE r.rolname = 'observatory_readonly'""").fetchall()
    assert setting == [(["default_transaction_read_only=on"],)]


def test_down_then_up_again(server: PrivatePostgres) -> None:
    assert _migrate(server.dsn) == 1
    with psycopg.connect(server.dsn) as conn, Migrator(conn) as migrator:
        assert len(migrator.down()) == 1
        assert conn.execute("SELECT to_regclass('spans'), to_regclass('span_rollups_1m'), to_regclass('span_rollups_1h')"
                            ).fetchone() == (None, None, None)
        assert len(migrator.up()) == 1
