"""The migration on a cluster of its own: concurrent migrators of several databases, down and up."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from storage.migrations import DEFAULT_DIR, Migrator
from tests.conftest import REDIS_URL
from tests.infra import PrivatePostgres
from tests.support import SHIPPED_MIGRATIONS, ServiceProcess, free_port, service_env


@pytest.fixture
def server(private_postgres: PrivatePostgres) -> PrivatePostgres:
    return private_postgres


SHIPPED = len(list(DEFAULT_DIR.glob("*.up.sql")))  # migrations this checkout ships


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
        assert list(pool.map(_migrate, dsns)) == [len(SHIPPED_MIGRATIONS)] * len(dsns)
    with psycopg.connect(server.dsn) as conn:
        setting = conn.execute("""SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole
                                  WHERE r.rolname = 'observatory_readonly'""").fetchall()
    assert setting == [(["default_transaction_read_only=on"],)]


def test_down_then_up_again(server: PrivatePostgres) -> None:
    assert _migrate(server.dsn) == len(SHIPPED_MIGRATIONS)
    with psycopg.connect(server.dsn) as conn, Migrator(conn) as migrator:
        assert len(migrator.down(steps=None, to=0)) == len(SHIPPED_MIGRATIONS)
        assert conn.execute("SELECT to_regclass('spans'), to_regclass('span_rollups_1m'), to_regclass('span_rollups_1h'),"
                            " to_regclass('logs'), to_regclass('metric_points')").fetchone() == (None,) * 5
        assert len(migrator.up()) == len(SHIPPED_MIGRATIONS)


def on(server: PrivatePostgres, dbname: str, user: str = "postgres", password: str = "") -> str:
    secret = f":{password}" if password else ""
    return f"postgresql://{user}{secret}@127.0.0.1:{server.port}/{dbname}"


def test_a_writer_with_run_migrations_does_what_migrate_up_does(
    server: PrivatePostgres, redis_prefix: str, tmp_path: Path
) -> None:
    # A private cluster: role passwords are cluster-wide, so the shared server's stay untouched.
    # MIGRATIONS_DIR holds the shipped migrations plus one more, so the writer must read it.
    folder = tmp_path / "migrations"
    shutil.copytree(DEFAULT_DIR, folder)
    (folder / "9000_marker.up.sql").write_text("CREATE TABLE migrations_dir_marker (id int);\n")
    (folder / "9000_marker.down.sql").write_text("DROP TABLE migrations_dir_marker;\n")
    port = free_port()
    writer = ServiceProcess("storage", service_env({
        "RUN_MIGRATIONS": "true", "MIGRATIONS_DIR": str(folder),
        "DATABASE_URL": on(server, "fresh_observatory"),
        "DATABASE_APP_URL": on(server, "fresh_observatory", "observatory_app", "app-pw"),
        "DATABASE_READONLY_URL": on(server, "fresh_observatory", "observatory_readonly", "ro-pw"),
        "REDIS_URL": REDIS_URL, "REDIS_KEY_PREFIX": redis_prefix, "METRICS_HOST": "127.0.0.1",
        "STORAGE_METRICS_PORT": str(port), "OBSERVATORY_ENV_FILE": "/nonexistent",
    }), port, tmp_path / "storage.log")
    try:
        writer.start().wait_ready(60)
    finally:
        assert writer.stop() == 0, writer.log()
    with psycopg.connect(on(server, "fresh_observatory")) as conn:
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
        marker = conn.execute("SELECT to_regclass('migrations_dir_marker')").fetchone()
        passwords = dict(conn.execute(
            "SELECT rolname, rolpassword IS NOT NULL FROM pg_authid WHERE rolname LIKE 'observatory_%'"
        ).fetchall())
    assert versions[-1] == 9000 and marker == ("migrations_dir_marker",)
    assert passwords == {"observatory_app": True, "observatory_readonly": True}
    assert "created_database" in writer.log() and "migrations applied" in writer.log()


def test_a_writer_whose_migrations_fail_exits_with_the_reason(
    server: PrivatePostgres, redis_prefix: str, tmp_path: Path
) -> None:
    port = free_port()
    writer = ServiceProcess("storage", service_env({
        "RUN_MIGRATIONS": "true", "MIGRATIONS_DIR": str(tmp_path / "missing"),
        "DATABASE_URL": on(server, "fresh_observatory"), "REDIS_URL": REDIS_URL, "REDIS_KEY_PREFIX": redis_prefix,
        "METRICS_HOST": "127.0.0.1", "STORAGE_METRICS_PORT": str(port), "OBSERVATORY_ENV_FILE": "/nonexistent",
    }), port, tmp_path / "storage.log").start()
    assert writer.proc is not None
    assert writer.proc.wait(60) == 1
    assert "migrations failed" in writer.log() and f"{tmp_path / 'missing'} does not exist" in writer.log()
    assert "Traceback" not in writer.log()

